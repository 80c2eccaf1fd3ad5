"""Protobuf <-> domain converters of the metrics service (with api.py, the only *_pb2 users)."""

from __future__ import annotations

import base64
import math

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from loopml.common.v1 import metric_pb2, refs_pb2, schema_pb2, value_pb2
from loopml.metrics.v1 import alerts_pb2, metrics_pb2
from loopml.runtime.errors import InvalidArgument
from loopml.services.metrics.core import alerts as al
from loopml.services.metrics.core import custom, drift
from loopml.services.metrics.core import fields as fp
from loopml.services.metrics.core.model import (
    Aggregation,
    Feedback,
    Matcher,
    MatchOp,
    ModelPerformance,
    Point,
    PredictionRecord,
    Query,
    Score,
    Series,
)
from loopml.services.metrics.core.validation import check_range  # noqa: F401 (used by api)


# -- scalars ---------------------------------------------------------------------------------
def ts(t: Timestamp) -> float:
    return t.seconds + t.nanos / 1e9


def opt_ts(message, name: str) -> float | None:
    return ts(getattr(message, name)) if message.HasField(name) else None


def to_ts(seconds: float | None) -> Timestamp | None:
    if seconds is None:
        return None
    out = Timestamp()
    out.seconds = int(math.floor(seconds))
    out.nanos = int(round((seconds - math.floor(seconds)) * 1e9)) % 1_000_000_000
    return out


def dur(d: Duration) -> float:
    return d.seconds + d.nanos / 1e9


def to_dur(seconds: float) -> Duration:
    out = Duration()
    out.FromNanoseconds(int(round(seconds * 1e9)))
    return out


def value(v: value_pb2.Value):
    kind = v.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return None
    if kind == "timestamp_value":
        return ts(v.timestamp_value)
    return getattr(v, kind)


def to_value(x) -> value_pb2.Value:
    if x is None:
        return value_pb2.Value(null_value=0)
    if isinstance(x, bool):
        return value_pb2.Value(bool_value=x)
    if isinstance(x, int):
        return value_pb2.Value(int64_value=x)
    if isinstance(x, float):
        return value_pb2.Value(double_value=x)
    return value_pb2.Value(string_value=str(x))


def column(c: value_pb2.Column, rows: int) -> list:
    kind = c.WhichOneof("values")
    if kind is None:
        return [None] * rows
    if kind == "mixed_values":
        return [value(v) for v in c.mixed_values.values]
    if kind == "timestamp_values":
        cells = [ts(t) for t in c.timestamp_values.values]
    else:
        cells = list(getattr(c, kind).values)
    for i in c.null_indices:
        if 0 <= i < len(cells):
            cells[i] = None
    return cells


# -- ingest ----------------------------------------------------------------------------------
def point(p: metrics_pb2.MetricPoint) -> Point:
    return Point(p.name, dict(p.labels), p.value, ts(p.time) if p.HasField("time") else 0.0)


def prediction_record(r: metrics_pb2.PredictionRecord) -> PredictionRecord:
    """Shape only; the record itself is stored as its serialized bytes (read by RecordCodec)."""
    rows = r.inputs.row_count or _length(r.predictions)
    return PredictionRecord(
        request_id=r.request_id,
        model_name=r.model_name,
        model_version=r.model_version,
        time=ts(r.time) if r.HasField("time") else 0.0,
        row_count=rows,
        payload=r.SerializeToString(deterministic=False),
        column_lengths={c.name: _length(c, rows) for c in r.inputs.columns},
        prediction_count=_length(r.predictions, rows),
        probability_count=len(r.probabilities.values),
        class_count=len(r.probabilities.class_labels),
        latency_s=dur(r.latency) if r.HasField("latency") else 0.0,
    )


def _length(c: value_pb2.Column, rows: int = 0) -> int:
    kind = c.WhichOneof("values")
    return rows if kind is None else len(getattr(c, kind).values)  # an unset column: all missing


class RecordCodec:
    """Reads stored prediction records (their serialized PredictionRecord bytes) back."""

    @staticmethod
    def decode(payload: bytes) -> dict:
        """One record as plain Python values."""
        r = metrics_pb2.PredictionRecord.FromString(payload)
        rows = r.inputs.row_count or _length(r.predictions)
        return {
            "inputs": {c.name: column(c, rows) for c in r.inputs.columns},
            "predictions": column(r.predictions, rows),
            "classes": [value(v) for v in r.probabilities.class_labels],
            "probabilities": list(r.probabilities.values),
            "labels": dict(r.labels),
        }

    @staticmethod
    def columns(payloads: list[bytes], names: list[str]) -> tuple[dict[str, list], list, int]:
        """The input columns `names` and the predictions of many records, concatenated, and the
        row count. Parses all records in one call: the payloads, each framed as field 1, form a
        RecordPredictionsRequest (the wire format allows that), so the per-record work left in
        Python is a few attribute reads."""
        from loopml.metrics.v1.metrics_service_pb2 import RecordPredictionsRequest

        framed = b"".join(b"\x0a" + _varint(len(p)) + p for p in payloads)
        batch = RecordPredictionsRequest.FromString(framed)
        out: dict[str, list] = {n: [] for n in names}
        predictions: list = []
        total = 0
        for r in batch.records:
            inputs = r.inputs
            rows = inputs.row_count
            seen = 0
            for c in inputs.columns:
                dest = out.get(c.name)
                if dest is not None:
                    _extend(dest, c, rows)
                    seen += 1
            if seen < len(out):  # columns this record lacks are missing cells
                present = {c.name for c in inputs.columns}
                for name, dest in out.items():
                    if name not in present:
                        dest.extend([None] * rows)
            _extend(predictions, r.predictions, rows)
            total += rows
        return out, predictions, total


_PLAIN = frozenset({"double_values", "int64_values", "string_values", "bool_values"})


def _extend(dest: list, c: value_pb2.Column, rows: int) -> None:
    kind = c.WhichOneof("values")
    if kind in _PLAIN and not c.null_indices:
        dest.extend(getattr(c, kind).values)  # the common case: one C-level copy
    else:
        dest.extend(column(c, rows))


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def feedback(f: metrics_pb2.Feedback) -> Feedback:
    return Feedback(
        f.request_id,
        f.row,
        value(f.actual),
        dict(f.business_values),
        ts(f.time) if f.HasField("time") else 0.0,
    )


# -- queries ---------------------------------------------------------------------------------
_AGG = {
    metrics_pb2.AGGREGATION_UNSPECIFIED: Aggregation.AVG,
    metrics_pb2.AGGREGATION_SUM: Aggregation.SUM,
    metrics_pb2.AGGREGATION_AVG: Aggregation.AVG,
    metrics_pb2.AGGREGATION_MIN: Aggregation.MIN,
    metrics_pb2.AGGREGATION_MAX: Aggregation.MAX,
    metrics_pb2.AGGREGATION_COUNT: Aggregation.COUNT,
    metrics_pb2.AGGREGATION_RATE: Aggregation.RATE,
    metrics_pb2.AGGREGATION_QUANTILE: Aggregation.QUANTILE,
}
_AGG_BACK = {v: k for k, v in _AGG.items() if k != metrics_pb2.AGGREGATION_UNSPECIFIED}
_MATCH = {
    metrics_pb2.MATCH_OPERATOR_UNSPECIFIED: MatchOp.EQUAL,
    metrics_pb2.MATCH_OPERATOR_EQUAL: MatchOp.EQUAL,
    metrics_pb2.MATCH_OPERATOR_NOT_EQUAL: MatchOp.NOT_EQUAL,
    metrics_pb2.MATCH_OPERATOR_REGEX: MatchOp.REGEX,
    metrics_pb2.MATCH_OPERATOR_NOT_REGEX: MatchOp.NOT_REGEX,
}
_MATCH_BACK = {v: k for k, v in _MATCH.items() if k != metrics_pb2.MATCH_OPERATOR_UNSPECIFIED}


def aggregation(a: int, field: str) -> Aggregation:
    if a not in _AGG:
        raise InvalidArgument(field, f"unknown aggregation {a}")
    return _AGG[a]


def matchers(ms, field: str) -> tuple[Matcher, ...]:
    out = []
    for i, m in enumerate(ms):
        if m.operator not in _MATCH:
            raise InvalidArgument(f"{field}[{i}].operator", f"unknown operator {m.operator}")
        out.append(Matcher(m.label, _MATCH[m.operator], m.value))
    return tuple(out)


def to_matchers(ms: tuple[Matcher, ...]):
    return [metrics_pb2.LabelMatcher(label=m.label, operator=_MATCH_BACK[m.op], value=m.value) for m in ms]


def query(req, now: float) -> Query:
    end = opt_ts(req, "end_time") or now
    start = opt_ts(req, "start_time")
    start = end - 3600.0 if start is None else start
    return Query(
        req.name,
        start,
        end,
        dur(req.step) if req.HasField("step") else 0.0,
        aggregation(req.aggregation, "aggregation"),
        matchers(req.matchers, "matchers"),
        req.quantile,
        tuple(req.group_by),
    )


def to_series(s: Series) -> metrics_pb2.Series:
    # Filled in place: a query answers thousands of samples, and building a Sample and a
    # Timestamp message per sample costs several times more.
    out = metrics_pb2.Series(name=s.name, labels=s.labels)
    add = out.samples.add
    for t, v in s.samples:
        sample = add(value=v)
        seconds = math.floor(t)
        sample.time.seconds = seconds
        nanos = round((t - seconds) * 1e9) % 1_000_000_000
        if nanos:
            sample.time.nanos = nanos
    return out


def page_token(token: str, field: str = "page_token") -> int:
    if not token:
        return 0
    try:
        offset = int(base64.urlsafe_b64decode(token.encode()).decode().removeprefix("o:"))
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument(field, "malformed page token") from None
    if offset < 0:
        raise InvalidArgument(field, "malformed page token")
    return offset


def next_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def page_size(size: int, default: int, field: str = "page_size") -> int:
    if size < 0:
        raise InvalidArgument(field, "page_size must not be negative")
    return min(size or default, 1000)


# -- model metrics ---------------------------------------------------------------------------
METRIC_NAMES = {
    metric_pb2.METRIC_NAME_ACCURACY: "accuracy",
    metric_pb2.METRIC_NAME_BALANCED_ACCURACY: "balanced_accuracy",
    metric_pb2.METRIC_NAME_F1: "f1",
    metric_pb2.METRIC_NAME_ROC_AUC: "roc_auc",
    metric_pb2.METRIC_NAME_LOG_LOSS: "log_loss",
    metric_pb2.METRIC_NAME_RMSE: "rmse",
    metric_pb2.METRIC_NAME_MAE: "mae",
    metric_pb2.METRIC_NAME_R2: "r2",
    metric_pb2.METRIC_NAME_MAPE: "mape",
    metric_pb2.METRIC_NAME_PRECISION: "precision",
    metric_pb2.METRIC_NAME_RECALL: "recall",
}
METRIC_ENUMS = {v: k for k, v in METRIC_NAMES.items()}
ONLINE_METRICS = {"accuracy", "roc_auc", "log_loss", "rmse", "mae"}
EVAL_SETS = {
    metric_pb2.EVALUATION_SET_CROSS_VALIDATION: "cross_validation",
    metric_pb2.EVALUATION_SET_VALIDATION: "validation",
    metric_pb2.EVALUATION_SET_TEST: "test",
    metric_pb2.EVALUATION_SET_TRAIN: "train",
    metric_pb2.EVALUATION_SET_ONLINE: "online",
}
EVAL_ENUMS = {v: k for k, v in EVAL_SETS.items()}


def metric_name(m: int, field: str, online_only: bool = True) -> str:
    name = METRIC_NAMES.get(m)
    if name is None or (online_only and name not in ONLINE_METRICS):
        raise InvalidArgument(field, "online metrics are accuracy, ROC AUC, log loss, RMSE and MAE")
    return name


def score(s: metric_pb2.MetricScore) -> Score:
    return Score(
        METRIC_NAMES.get(s.metric, "unspecified"),
        s.value,
        s.std if s.HasField("std") else None,
        EVAL_SETS.get(s.evaluation_set, "unspecified"),
    )


def to_score(s: Score) -> metric_pb2.MetricScore:
    out = metric_pb2.MetricScore(
        metric=METRIC_ENUMS.get(s.metric, 0),
        value=s.value,
        evaluation_set=EVAL_ENUMS.get(s.evaluation_set, 0),
    )
    if s.std is not None:
        out.std = s.std
    return out


def to_performance(p: ModelPerformance):
    return dict(
        model_name=p.model_name,
        start_time=to_ts(p.start),
        end_time=to_ts(p.end),
        versions=[
            metrics_pb2.VersionPerformance(
                model_version=v.version,
                online_metrics=[to_score(s) for s in v.online],
                training_metrics=[to_score(s) for s in v.training],
                prediction_count=v.prediction_count,
                feedback_count=v.feedback_count,
                coverage=v.coverage,
                training_metrics_note=v.training_note,
            )
            for v in p.versions
        ],
    )


# -- drift -----------------------------------------------------------------------------------
_SEVERITY = {
    "unspecified": metrics_pb2.DRIFT_SEVERITY_UNSPECIFIED,
    "none": metrics_pb2.DRIFT_SEVERITY_NONE,
    "warning": metrics_pb2.DRIFT_SEVERITY_WARNING,
    "drift": metrics_pb2.DRIFT_SEVERITY_DRIFT,
}
COLUMN_TYPES = {
    "numeric": schema_pb2.COLUMN_TYPE_NUMERIC,
    "integer": schema_pb2.COLUMN_TYPE_INTEGER,
    "boolean": schema_pb2.COLUMN_TYPE_BOOLEAN,
    "categorical": schema_pb2.COLUMN_TYPE_CATEGORICAL,
    "datetime": schema_pb2.COLUMN_TYPE_DATETIME,
    "text": schema_pb2.COLUMN_TYPE_TEXT,
    "identifier": schema_pb2.COLUMN_TYPE_IDENTIFIER,
}


def thresholds(t: metrics_pb2.DriftThresholds) -> drift.Thresholds:
    d = drift.Thresholds()
    return drift.Thresholds(
        t.psi_warning or d.psi_warning,
        t.psi_drift or d.psi_drift,
        t.ks_drift or d.ks_drift,
        t.min_live_rows or d.min_live_rows,
    )


def to_feature_drift(f: drift.FeatureDrift) -> metrics_pb2.FeatureDrift:
    out = metrics_pb2.FeatureDrift(
        feature=f.feature,
        type=COLUMN_TYPES.get(f.type_name, 0),
        psi=f.psi,
        severity=_SEVERITY[f.severity],
        rank=f.rank,
        reference_missing_fraction=f.reference_missing,
        live_missing_fraction=f.live_missing,
        bins=[
            metrics_pb2.DriftBin(
                label=b.label,
                lower=b.lower,
                upper=b.upper,
                reference_fraction=b.reference,
                live_fraction=b.live,
                unseen=b.unseen,
            )
            for b in f.bins
        ],
    )
    if f.ks is not None:
        out.ks_statistic = f.ks
    if f.ks_p_value is not None and not math.isnan(f.ks_p_value):
        out.ks_p_value = f.ks_p_value
    return out


def to_drift_report(r: drift.DriftReport) -> metrics_pb2.DriftReport:
    th = r.thresholds
    out = metrics_pb2.DriftReport(
        model_name=r.model_name,
        model_version=r.model_version,
        reference_dataset=refs_pb2.DatasetRef(
            dataset_id=r.reference.dataset_id, version=r.reference.dataset_version
        ),
        reference_split_id=r.reference.split_id,
        start_time=to_ts(r.start),
        end_time=to_ts(r.end),
        reference_row_count=r.reference.row_count,
        live_row_count=r.live_row_count,
        features=[to_feature_drift(f) for f in r.features],
        severity=_SEVERITY[r.severity],
        thresholds=metrics_pb2.DriftThresholds(
            psi_warning=th.psi_warning,
            psi_drift=th.psi_drift,
            ks_drift=th.ks_drift,
            min_live_rows=th.min_live_rows,
        ),
        create_time=to_ts(r.create_time),
    )
    if r.prediction is not None:
        out.prediction_drift.CopyFrom(to_feature_drift(r.prediction))
    return out


# -- custom metrics and filters --------------------------------------------------------------
_OPS = {
    metrics_pb2.COMPARISON_OPERATOR_EQUAL: fp.Op.EQ,
    metrics_pb2.COMPARISON_OPERATOR_NOT_EQUAL: fp.Op.NE,
    metrics_pb2.COMPARISON_OPERATOR_GREATER: fp.Op.GT,
    metrics_pb2.COMPARISON_OPERATOR_GREATER_OR_EQUAL: fp.Op.GE,
    metrics_pb2.COMPARISON_OPERATOR_LESS: fp.Op.LT,
    metrics_pb2.COMPARISON_OPERATOR_LESS_OR_EQUAL: fp.Op.LE,
    metrics_pb2.COMPARISON_OPERATOR_IN: fp.Op.IN,
    metrics_pb2.COMPARISON_OPERATOR_NOT_IN: fp.Op.NOT_IN,
}
_OPS_BACK = {v: k for k, v in _OPS.items()}
_CUSTOM_AGG = {
    metrics_pb2.CUSTOM_AGGREGATION_COUNT: custom.CustomAggregation.COUNT,
    metrics_pb2.CUSTOM_AGGREGATION_SUM: custom.CustomAggregation.SUM,
    metrics_pb2.CUSTOM_AGGREGATION_AVG: custom.CustomAggregation.AVG,
    metrics_pb2.CUSTOM_AGGREGATION_MIN: custom.CustomAggregation.MIN,
    metrics_pb2.CUSTOM_AGGREGATION_MAX: custom.CustomAggregation.MAX,
    metrics_pb2.CUSTOM_AGGREGATION_FRACTION: custom.CustomAggregation.FRACTION,
}
_CUSTOM_AGG_BACK = {v: k for k, v in _CUSTOM_AGG.items()}


def field_filters(fs, field: str) -> tuple[fp.FieldFilter, ...]:
    out = []
    for i, f in enumerate(fs):
        if f.operator not in _OPS:
            raise InvalidArgument(f"{field}[{i}].operator", "an operator is required")
        out.append(
            fp.FieldFilter(f.field, _OPS[f.operator], value(f.value), tuple(value(v) for v in f.values))
        )
    return tuple(out)


def to_field_filters(fs: tuple[fp.FieldFilter, ...]):
    return [
        metrics_pb2.FieldFilter(
            field=f.field,
            operator=_OPS_BACK[f.op],
            value=to_value(f.value),
            values=[to_value(v) for v in f.values],
        )
        for f in fs
    ]


def custom_metric(m: metrics_pb2.CustomMetric) -> custom.CustomMetric:
    if m.aggregation not in _CUSTOM_AGG:
        raise InvalidArgument("custom_metric.aggregation", "an aggregation is required")
    return custom.CustomMetric(
        name=m.name,
        aggregation=_CUSTOM_AGG[m.aggregation],
        model_name=m.model_name,
        description=m.description,
        field=m.field,
        filters=field_filters(m.filters, "custom_metric.filters"),
        numerator_filters=field_filters(m.numerator_filters, "custom_metric.numerator_filters"),
        window_s=dur(m.window) if m.HasField("window") else 3600.0,
        group_by=tuple(m.group_by),
    )


def to_custom_metric(m: custom.CustomMetric) -> metrics_pb2.CustomMetric:
    return metrics_pb2.CustomMetric(
        name=m.name,
        description=m.description,
        model_name=m.model_name,
        aggregation=_CUSTOM_AGG_BACK[m.aggregation],
        field=m.field,
        filters=to_field_filters(m.filters),
        numerator_filters=to_field_filters(m.numerator_filters),
        window=to_dur(m.window_s),
        group_by=list(m.group_by),
        create_time=to_ts(m.create_time),
    )


# -- alert rules -----------------------------------------------------------------------------
_CMP = {
    metrics_pb2.COMPARISON_OPERATOR_EQUAL: "==",
    metrics_pb2.COMPARISON_OPERATOR_NOT_EQUAL: "!=",
    metrics_pb2.COMPARISON_OPERATOR_GREATER: ">",
    metrics_pb2.COMPARISON_OPERATOR_GREATER_OR_EQUAL: ">=",
    metrics_pb2.COMPARISON_OPERATOR_LESS: "<",
    metrics_pb2.COMPARISON_OPERATOR_LESS_OR_EQUAL: "<=",
}
_CMP_BACK = {v: k for k, v in _CMP.items()}
_STATES = {
    al.INACTIVE: alerts_pb2.ALERT_STATE_INACTIVE,
    al.PENDING: alerts_pb2.ALERT_STATE_PENDING,
    al.FIRING: alerts_pb2.ALERT_STATE_FIRING,
    al.RESOLVED: alerts_pb2.ALERT_STATE_RESOLVED,
}
_STATES_BACK = {v: k for k, v in _STATES.items()}
_ACTION_KINDS = {
    "record": alerts_pb2.ALERT_ACTION_KIND_RECORD,
    "webhook": alerts_pb2.ALERT_ACTION_KIND_WEBHOOK,
    "retrain": alerts_pb2.ALERT_ACTION_KIND_RETRAIN,
}
_ACTION_STATUS = {
    "running": alerts_pb2.ACTION_STATUS_RUNNING,
    "succeeded": alerts_pb2.ACTION_STATUS_SUCCEEDED,
    "failed": alerts_pb2.ACTION_STATUS_FAILED,
    "skipped": alerts_pb2.ACTION_STATUS_SKIPPED,
}
_RETRAIN_DATA = {
    alerts_pb2.RETRAIN_DATA_UNSPECIFIED: "newest_dataset_version",
    alerts_pb2.RETRAIN_DATA_NEWEST_DATASET_VERSION: "newest_dataset_version",
    alerts_pb2.RETRAIN_DATA_PREDICTIONS_WITH_FEEDBACK: "predictions_with_feedback",
}


def model_selector(m: refs_pb2.ModelRef, field: str) -> al.ModelSelector:
    if not m.name:
        raise InvalidArgument(f"{field}.name", "a model name is required")
    which = m.WhichOneof("selector")
    return al.ModelSelector(
        m.name,
        alias=m.alias if which == "alias" else "",
        version=m.version if which == "version" else 0,
        latest=which == "latest" and m.latest,
    )


def to_model_ref(m: al.ModelSelector) -> refs_pb2.ModelRef:
    if m.version:
        return refs_pb2.ModelRef(name=m.name, version=m.version)
    if m.latest:
        return refs_pb2.ModelRef(name=m.name, latest=True)
    return refs_pb2.ModelRef(name=m.name, alias=m.alias) if m.alias else refs_pb2.ModelRef(name=m.name)


def alert_rule(r: alerts_pb2.AlertRule) -> al.AlertRule:
    which = r.WhichOneof("target")
    if which == "metric":
        t = r.metric
        target = al.MetricTarget(
            t.name,
            matchers(t.matchers, "rule.metric.matchers"),
            aggregation(t.aggregation, "rule.metric.aggregation").value,
            t.quantile,
        )
    elif which == "performance":
        t = r.performance
        metric = metric_name(t.metric, "rule.performance.metric") if t.metric else ""
        target = al.PerformanceTarget(
            model_selector(t.model, "rule.performance.model"), metric, t.min_feedback_count
        )
    elif which == "drift":
        t = r.drift
        target = al.DriftTarget(
            model_selector(t.model, "rule.drift.model"),
            t.feature,
            "ks" if t.statistic == alerts_pb2.DRIFT_STATISTIC_KS else "psi",
        )
    else:
        raise InvalidArgument("rule.target", "one of metric, performance or drift is required")
    if r.operator not in _CMP:
        raise InvalidArgument(
            "rule.operator", "operator must be one of ==, !=, >, >=, <, <= (not IN / NOT_IN)"
        )
    actions = []
    for i, a in enumerate(r.actions):
        kind = a.WhichOneof("action")
        if kind == "webhook":
            actions.append(
                al.Action("webhook", url=a.webhook.url, headers=tuple(sorted(a.webhook.headers.items())))
            )
        elif kind == "retrain":
            rt = a.retrain
            actions.append(
                al.Action(
                    "retrain",
                    model=model_selector(rt.model, f"rule.actions[{i}].retrain.model"),
                    data=_RETRAIN_DATA.get(rt.data, "newest_dataset_version"),
                    min_improvement=rt.min_improvement,
                    time_budget_s=dur(rt.time_budget) if rt.HasField("time_budget") else 0.0,
                    cooldown_s=dur(rt.cooldown) if rt.HasField("cooldown") else 0.0,
                )
            )
        elif kind == "record":
            actions.append(al.Action("record"))
        else:
            raise InvalidArgument(f"rule.actions[{i}]", "an action is required")
    return al.AlertRule(
        name=r.name,
        target=target,
        operator=_CMP[r.operator],
        threshold=r.threshold,
        window_s=dur(r.window) if r.HasField("window") else 0.0,
        for_s=dur(r.for_duration) if r.HasField("for_duration") else 0.0,
        interval_s=dur(r.evaluation_interval) if r.HasField("evaluation_interval") else 0.0,
        actions=tuple(actions),
        description=r.description,
        disabled=r.disabled,
        labels=tuple(sorted(r.labels.items())),
    )


def to_alert_rule(r: al.AlertRule) -> alerts_pb2.AlertRule:
    out = alerts_pb2.AlertRule(
        rule_id=r.rule_id,
        name=r.name,
        description=r.description,
        operator=_CMP_BACK[r.operator],
        threshold=r.threshold,
        window=to_dur(r.window_s),
        for_duration=to_dur(r.for_s),
        disabled=r.disabled,
        labels=dict(r.labels),
        state=_STATES.get(r.state, 0),
        create_time=to_ts(r.create_time),
    )
    if r.interval_s:
        out.evaluation_interval.CopyFrom(to_dur(r.interval_s))
    t = r.target
    if isinstance(t, al.MetricTarget):
        out.metric.CopyFrom(
            alerts_pb2.MetricTarget(
                name=t.name,
                matchers=to_matchers(t.matchers),
                aggregation=_AGG_BACK[Aggregation(t.aggregation)],
                quantile=t.quantile,
            )
        )
    elif isinstance(t, al.PerformanceTarget):
        out.performance.CopyFrom(
            alerts_pb2.PerformanceTarget(
                model=to_model_ref(t.model),
                metric=METRIC_ENUMS.get(t.metric, 0),
                min_feedback_count=t.min_feedback_count,
            )
        )
    else:
        out.drift.CopyFrom(
            alerts_pb2.DriftTarget(
                model=to_model_ref(t.model),
                feature=t.feature,
                statistic=alerts_pb2.DRIFT_STATISTIC_KS
                if t.statistic == "ks"
                else alerts_pb2.DRIFT_STATISTIC_PSI,
            )
        )
    for a in r.actions:
        if a.kind == "webhook":  # headers are write-only
            out.actions.add(
                webhook=alerts_pb2.WebhookAction(url=a.url, headers={k: "<redacted>" for k, _ in a.headers})
            )
        elif a.kind == "retrain":
            rt = alerts_pb2.RetrainAction(
                model=to_model_ref(a.model),
                min_improvement=a.min_improvement,
                data={v: k for k, v in _RETRAIN_DATA.items() if k}[a.data],
            )
            if a.time_budget_s:
                rt.time_budget.CopyFrom(to_dur(a.time_budget_s))
            if a.cooldown_s:
                rt.cooldown.CopyFrom(to_dur(a.cooldown_s))
            out.actions.add(retrain=rt)
        else:
            out.actions.add(record=alerts_pb2.RecordAction())
    return out


def alert_states(states, field: str) -> list[str]:
    out = []
    for i, s in enumerate(states):
        if s not in _STATES_BACK:
            raise InvalidArgument(f"{field}[{i}]", f"unknown alert state {s}")
        out.append(_STATES_BACK[s])
    return out


def to_alert(a: al.Alert) -> alerts_pb2.Alert:
    out = alerts_pb2.Alert(
        alert_id=a.alert_id,
        rule_id=a.rule_id,
        rule_name=a.rule_name,
        state=_STATES[a.state],
        value=a.value if a.value is not None else math.nan,
        threshold=a.threshold,
        pending_time=to_ts(a.pending_time),
        firing_time=to_ts(a.firing_time),
        resolved_time=to_ts(a.resolved_time),
        message=a.message,
        labels=a.labels,
    )
    for r in a.action_results:
        result = out.action_results.add(
            kind=_ACTION_KINDS[r.kind],
            status=_ACTION_STATUS[r.status],
            detail=r.detail,
            update_time=to_ts(r.update_time),
        )
        if r.retrain:
            o = r.retrain
            result.retrain.CopyFrom(
                alerts_pb2.RetrainOutcome(
                    search_id=o["search_id"],
                    new_version=o["new_version"],
                    metric=METRIC_ENUMS.get(o["metric"], 0),
                    serving_score=o["serving_score"],
                    candidate_score=o["candidate_score"],
                    promoted=o["promoted"],
                )
            )
    return out
