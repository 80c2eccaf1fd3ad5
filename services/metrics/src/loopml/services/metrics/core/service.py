"""The metrics service's domain: ingest, queries, performance, drift, custom metrics.

Alert rules live in `evaluator.py` on top of this. Collaborators are injected: the repository,
a model catalog (the registry) and a reference source (the dataset service), either of which may
be None or unreachable; the core then answers from its own data and says what it left out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from loopml.runtime.errors import (
    FailedPrecondition,
    InvalidArgument,
    LoopmlError,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from loopml.services.metrics.core import (
    builtin,
    custom,
    drift,
    feedback_data,
    fields,
    performance,
    timeseries,
)
from loopml.services.metrics.core.model import (
    Feedback,
    FeedbackResult,
    ModelPerformance,
    Point,
    PredictionRecord,
    Query,
    Series,
    VersionInfo,
    VersionPerformance,
)
from loopml.services.metrics.core.validation import (
    check_finite,
    check_label_name,
    check_metric_name,
    check_range,
)
from loopml.services.metrics.repository import Repository
from loopml.services.metrics.rules_repository import RulesRepository

DAY = 86400.0
MAX_REJECTED_IDS = 100


@dataclass(frozen=True)
class CoreConfig:
    feedback_window_s: float = 7 * DAY
    max_batch_size: int = 50_000
    raw_retention_s: float = 7 * DAY
    minute_retention_s: float = 30 * DAY
    hour_retention_s: float = 400 * DAY
    prediction_retention_s: float = 30 * DAY


class MetricsCore:
    def __init__(
        self,
        repo: Repository,
        rules: RulesRepository,
        config: CoreConfig = CoreConfig(),
        catalog=None,
        references: drift.ReferenceSource | None = None,
        clock=time.time,
    ):
        self.repo = repo
        self.rules = rules
        self.config = config
        self.catalog = catalog
        self.references = references
        self.clock = clock

    # -- ingest ---------------------------------------------------------------------------
    def _check_batch(self, n: int, what: str) -> None:
        if n > self.config.max_batch_size:
            raise ResourceExhausted(f"{n} {what} in one batch; the limit is {self.config.max_batch_size}")

    def record_metrics(self, points: list[Point]) -> int:
        self._check_batch(len(points), "points")
        now = self.clock()
        fixed = []
        for i, p in enumerate(points):
            check_metric_name(p.name, f"points[{i}].name")
            if p.name in builtin.BUILTIN:
                raise InvalidArgument(
                    f"points[{i}].name", f"{p.name!r} is a built-in metric (from prediction logs)"
                )
            for label in p.labels:
                check_label_name(label, f"points[{i}].labels")
            check_finite(p.value, f"points[{i}].value")
            fixed.append(p if p.time else replace(p, time=now))
        return self.repo.record_points(fixed) if fixed else 0

    def record_predictions(self, records: list[PredictionRecord]) -> tuple[int, int]:
        """(accepted, duplicates)."""
        self._check_batch(len(records), "records")
        now = self.clock()
        for i, r in enumerate(records):
            if not r.request_id:
                raise InvalidArgument(f"records[{i}].request_id", "a request id is required")
            if not r.model_name:
                raise InvalidArgument(f"records[{i}].model_name", "a model name is required")
            if r.prediction_count != r.row_count:
                raise InvalidArgument(
                    f"records[{i}].predictions", f"{r.prediction_count} predictions for {r.row_count} rows"
                )
            for col, cells in r.column_lengths.items():
                if cells != r.row_count:
                    raise InvalidArgument(
                        f"records[{i}].inputs.{col}", f"{cells} cells for {r.row_count} rows"
                    )
            if r.probability_count and r.probability_count != r.row_count * r.class_count:
                raise InvalidArgument(f"records[{i}].probabilities", "needs rows x classes values")
            if not r.time:
                r.time = now
        accepted = self.repo.record_predictions(records) if records else 0
        return accepted, len(records) - accepted

    def record_feedback(self, batch: list[Feedback]) -> FeedbackResult:
        self._check_batch(len(batch), "feedback")
        now = self.clock()
        for i, f in enumerate(batch):
            if not f.request_id:
                raise InvalidArgument(f"feedback[{i}].request_id", "a request id is required")
            if f.row < 0:
                raise InvalidArgument(f"feedback[{i}].row", "row must not be negative")
        heads = self.repo.prediction_heads(f.request_id for f in batch)
        result, joined = FeedbackResult(), []
        for f in batch:
            f = f if f.time else replace(f, time=now)
            head = heads.get(f.request_id)
            if head is None or f.row >= head[3]:
                result.unknown += 1
                self._reject(result, f.request_id)
            elif f.time - head[2] > self.config.feedback_window_s:
                result.expired += 1
                self._reject(result, f.request_id)
            else:
                joined.append((f, head[0], head[1], head[2]))
        self.repo.record_feedback(joined)
        result.accepted = len(joined)
        return result

    @staticmethod
    def _reject(result: FeedbackResult, request_id: str) -> None:
        if len(result.rejected_request_ids) < MAX_REJECTED_IDS:
            result.rejected_request_ids.append(request_id)

    # -- queries --------------------------------------------------------------------------
    def query(self, q: Query) -> list[Series]:
        timeseries.validate_query(q)
        definition = self.rules.custom_metric(q.name)
        if definition is not None:
            records = self.repo.predictions_in(q.start, q.end, definition.model_name, with_feedback=True)
            series = custom.evaluate(definition, records, q.start, q.step)
            return [s for s in series if timeseries.matches(s.labels, q.matchers)]
        if q.name in builtin.BUILTIN:
            return builtin.query_builtin(self.repo, q)
        return timeseries.query_points(self.repo, q)  # NotFound when no series has that name

    # -- models ---------------------------------------------------------------------------
    def _version_info(self, model_name: str, version: int) -> tuple[VersionInfo | None, str]:
        """Registry metadata of a version, or None and why."""
        if self.catalog is None:
            return None, "no registry configured"
        try:
            return self.catalog.version(model_name, version), ""
        except NotFound:
            return None, f"the registry does not know {model_name} version {version}"
        except (Unavailable, LoopmlError) as exc:
            return None, f"the registry was not reachable: {exc}"

    def _model_known(self, model_name: str) -> bool:
        if self.repo.model_known(model_name):
            return True
        if self.catalog is not None:
            try:
                self.catalog.version(model_name, 0)  # 0: the newest version
                return True
            except LoopmlError:
                return False
        return False

    def model_performance(
        self, model_name: str, version: int, start: float | None, end: float | None, metrics: list[str]
    ) -> ModelPerformance:
        if not model_name:
            raise InvalidArgument("model_name", "a model name is required")
        end = end or self.clock()
        start = start if start is not None else end - DAY
        check_range(start, end)
        if not self._model_known(model_name):
            raise NotFound("model", model_name)
        counts = self.repo.prediction_counts(start, end, model_name)
        versions = [version] if version else sorted(counts)
        out = []
        for v in versions:
            records = self.repo.predictions_in(start, end, model_name, v, with_feedback=True)
            info, note = self._version_info(model_name, v)
            if info is None and not self.repo.version_known(model_name, v):
                raise NotFound("model version", f"{model_name}/{v}")
            task = performance.infer_task(records, info.task if info else "")
            scores, feedback_count = performance.online_scores(records, task, metrics)
            training = list(info.training_metrics) if info else []
            out.append(
                VersionPerformance(
                    v,
                    scores,
                    training,
                    counts.get(v, 0),
                    feedback_count,
                    "" if info else f"training metrics omitted: {note}",
                )
            )
        return ModelPerformance(model_name, start, end, out)

    def drift_report(
        self,
        model_name: str,
        version: int,
        start: float | None,
        end: float | None,
        features: list[str],
        thresholds: drift.Thresholds,
        dataset_id: str = "",
        dataset_version: int = 0,
        split_id: str = "",
        reference: drift.Reference | None = None,
    ) -> drift.DriftReport:
        if not model_name:
            raise InvalidArgument("model_name", "a model name is required")
        end = end or self.clock()
        start = start if start is not None else end - DAY
        check_range(start, end)
        thresholds = thresholds.validated()
        if not self._model_known(model_name):
            raise NotFound("model", model_name)
        if not version:
            version = self._production_version(model_name)
        if reference is None:
            if self.references is None:
                raise FailedPrecondition(
                    "no reference source (dataset service) is configured", subject=f"model {model_name}"
                )
            reference = self.references.reference_for(
                model_name, version, dataset_id, dataset_version, split_id
            )
        live, predictions, rows = self.repo.prediction_columns(
            start, end, model_name, version, list(reference.features)
        )
        return drift.drift_report(
            model_name, version, reference, live, predictions, rows, start, end, thresholds, features
        )

    def _production_version(self, model_name: str) -> int:
        if self.catalog is not None:
            try:
                return self.catalog.resolve_alias(model_name, "production").version
            except NotFound:
                pass
            except LoopmlError:
                pass
        version = self.repo.latest_version(model_name)
        if not version:
            raise NotFound("model version", f"{model_name}@production")
        return version

    def feedback_training_rows(self, model_name: str, columns: list[str], label: str) -> dict[str, list]:
        """Every kept prediction row of the model (any version) that received feedback: the
        input `columns` and the actual value under `label`. FailedPrecondition when none has."""
        records = self.repo.predictions_in(0.0, self.clock() + 1.0, model_name, with_feedback=True)
        return feedback_data.labelled_rows(records, columns, label)

    # -- custom metrics -------------------------------------------------------------------
    def known_fields(self, model_name: str) -> fields.KnownFields:
        """Input columns and classes of a model: from the registry's signature when reachable,
        else from its logged predictions. NotFound when neither knows the model."""
        if not model_name:
            return fields.KnownFields("")
        inputs: set[str] = set()
        classes: set[str] = set()
        info, _ = self._version_info(model_name, 0)
        if info is not None:
            inputs.update(info.inputs)
            classes.update(str(c) for c in info.class_labels)
        sample = self.repo.sample_record(model_name)
        if sample is not None:
            inputs.update(sample.get("inputs", {}))
            classes.update(str(c) for c in sample.get("classes", []))
        if info is None and sample is None:
            raise NotFound("model", model_name)
        return fields.KnownFields(model_name, frozenset(inputs), frozenset(classes))

    def create_custom_metric(self, metric: custom.CustomMetric) -> custom.CustomMetric:
        check_metric_name(metric.name, "custom_metric.name")
        custom.validate(metric, self.known_fields(metric.model_name))
        if self.repo.metric_exists(metric.name) or metric.name in builtin.BUILTIN:
            raise InvalidArgument(
                "custom_metric.name", f"{metric.name!r} is already a recorded or built-in metric"
            )
        metric = replace(metric, create_time=self.clock())
        self.rules.add_custom_metric(metric)
        return metric

    # -- maintenance ----------------------------------------------------------------------
    def run_maintenance(self) -> dict[str, int]:
        """Retention: drop raw points, minute and hour aggregates and prediction records older
        than their configured ages (the aggregates are maintained at ingest)."""
        now = self.clock()
        c = self.config
        return self.repo.delete_before(
            now - c.raw_retention_s,
            now - c.minute_retention_s,
            now - c.hour_retention_s,
            now - c.prediction_retention_s,
        )
