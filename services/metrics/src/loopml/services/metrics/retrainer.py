"""`GrpcRetrainer`: the closed loop's retrain action over the trainer, dataset, registry and
inference services.

1. resolve the alias (registry) -> the serving version and its lineage (search, dataset, split);
2. the original search (trainer GetSearch) and the data to train on: the newest version of its
   dataset (dataset GetDataset), or, for RETRAIN_DATA_PREDICTIONS_WITH_FEEDBACK, a new version of
   that dataset uploaded (dataset SDK) from the model's logged predictions that received feedback:
   the serving version's input columns, the ground truth under the training label's name;
3. CreateSearch with the same spec on that dataset version, warm-started from the original search,
   registering under the same model name; wait until it ends;
4. score the serving and the new version on the same holdout: the test part of the new search's
   split (dataset PreviewDataset), predicted by both versions through inference; when that is not
   possible (no test part, inference not reachable) fall back to the TEST scores recorded in the
   registry and say so in the outcome's detail;
5. move the alias (registry SetAlias) when the new version is better by min_improvement.
"""

from __future__ import annotations

import io
import json
import logging
import math
import time
from collections.abc import Callable

import grpc
import numpy as np

from loopml.client.base import ServiceClient
from loopml.client.config import ClientConfig
from loopml.client.datasets import DatasetClient
from loopml.client.errors import LoopmlClientError, from_rpc_error
from loopml.common.v1 import metric_pb2, refs_pb2, value_pb2
from loopml.dataset.v1 import dataset_pb2, dataset_service_pb2
from loopml.inference.v1 import prediction_service_pb2, prediction_service_pb2_grpc
from loopml.runtime import errors
from loopml.services.metrics import convert as cv
from loopml.services.metrics.core import performance
from loopml.services.metrics.core.retrain import RetrainOutcome, RetrainRequest
from loopml.services.metrics.remote import GrpcModelCatalog, _Dataset, _domain_error
from loopml.trainer.v1 import search_pb2, trainer_service_pb2, trainer_service_pb2_grpc

log = logging.getLogger("loopml.metrics.retrain")
LOWER_IS_BETTER = {"log_loss", "rmse", "mae", "mape"}
HOLDOUT_ROWS = 5000
#: gRPC metadata asking inference to answer without recording the prediction.
NOT_LOGGED = (("loopml-log-prediction", "false"),)
FINAL = {search_pb2.SEARCH_STATE_SUCCEEDED, search_pb2.SEARCH_STATE_FAILED, search_pb2.SEARCH_STATE_CANCELLED}


class _Trainer(ServiceClient):
    service = "trainer"
    stub_class = trainer_service_pb2_grpc.TrainerServiceStub
    full_name = "loopml.trainer.v1.TrainerService"


class _Inference(ServiceClient):
    service = "inference"
    stub_class = prediction_service_pb2_grpc.PredictionServiceStub
    full_name = "loopml.inference.v1.PredictionService"

    def predict_unlogged(self, request: prediction_service_pb2.PredictRequest):
        """Predict without inference logging the prediction as live traffic: holdout scoring
        must not count in the model's online metrics, drift or custom metrics."""
        try:
            return self.stub.Predict(request, timeout=self._timeout(None), metadata=NOT_LOGGED)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None


#: feedback_rows(model_name, input_columns, label) -> {column: cells} of the rows with feedback.
FeedbackRows = Callable[[str, list[str], str], dict[str, list]]


class GrpcRetrainer:
    def __init__(
        self,
        config: ClientConfig,
        catalog: GrpcModelCatalog,
        feedback_rows: FeedbackRows,
        timeout_s: float = 3600.0,
        poll_s: float = 1.0,
    ):
        self._trainer = _Trainer(config)
        self._dataset = _Dataset(config)
        self._dataset_sdk = DatasetClient(config)  # streaming uploads
        self._inference = _Inference(config)
        self._feedback_rows = feedback_rows
        self._catalog = catalog
        self._timeout_s = timeout_s
        self._poll_s = poll_s

    def retrain(self, request: RetrainRequest) -> RetrainOutcome:
        serving = self._catalog.resolve_alias(request.model_name, request.alias)
        if not serving.search_id or not serving.dataset_id:
            raise errors.FailedPrecondition(
                f"{request.model_name} v{serving.version} has no search and dataset in its lineage"
            )
        try:
            search = self._run_search(serving, request)
        except LoopmlClientError as exc:
            raise _domain_error(exc, "retraining") from None
        metric = cv.METRIC_NAMES.get(search.spec.metric, "")
        outcome = RetrainOutcome(search_id=search.search_id, metric=metric)
        if search.state != search_pb2.SEARCH_STATE_SUCCEEDED:
            outcome.detail = (
                f"search ended {search_pb2.SearchState.Name(search.state)}: {search.failure_reason}"
            )
            return outcome
        outcome.new_version = search.result.registered_model.version
        if not outcome.new_version:
            outcome.detail = "the search registered no model version (register_model_name was dropped?)"
            return outcome
        how = self._score_on_holdout(search, serving, outcome)
        gain = outcome.candidate_score - outcome.serving_score
        gain = -gain if metric in LOWER_IS_BETTER else gain
        if math.isfinite(gain) and gain >= request.min_improvement:
            self._catalog.set_alias(
                request.model_name,
                request.alias,
                outcome.new_version,
                f"retrained by alert {request.alert_id}: {metric} {outcome.serving_score:.4g} "
                f"-> {outcome.candidate_score:.4g} ({how})",
            )
            outcome.promoted = True
            outcome.detail = f"promoted v{outcome.new_version} to {request.alias}; {how}"
        else:
            outcome.detail = (
                f"kept v{serving.version} on {request.alias}: gain {gain:.4g} < "
                f"{request.min_improvement}; {how}"
            )
        return outcome

    def _run_search(self, serving, request: RetrainRequest):
        original = self._trainer.call(
            "GetSearch", trainer_service_pb2.GetSearchRequest(search_id=serving.search_id)
        ).search
        dataset = self._dataset.call(
            "GetDataset", dataset_service_pb2.GetDatasetRequest(dataset_id=serving.dataset_id)
        )
        if request.data == "predictions_with_feedback":
            label = original.spec.label_column or serving.label_column
            newest = self._upload_feedback(dataset.dataset.name, serving, label, request.alert_id)
        else:
            newest = dataset.version.ref.version
        spec = search_pb2.SearchSpec()
        spec.CopyFrom(original.spec)
        spec.dataset.CopyFrom(refs_pb2.DatasetRef(dataset_id=serving.dataset_id, version=newest))
        if newest != original.spec.dataset.version:
            spec.split_id = ""  # a split belongs to one dataset version: let the trainer make one
        del spec.warm_start_search_ids[:]
        spec.warm_start_search_ids.append(serving.search_id)
        spec.register_model_name = request.model_name
        if request.time_budget_s:
            spec.time_budget.CopyFrom(cv.to_dur(request.time_budget_s))
        created = self._trainer.call(
            "CreateSearch",
            trainer_service_pb2.CreateSearchRequest(
                spec=spec, request_id=f"retrain-{request.alert_id}" if request.alert_id else ""
            ),
        ).search
        deadline = time.monotonic() + self._timeout_s
        while True:
            search = self._trainer.call(
                "GetSearch", trainer_service_pb2.GetSearchRequest(search_id=created.search_id)
            ).search
            if search.state in FINAL:
                return search
            if time.monotonic() > deadline:
                raise errors.DeadlineExceeded(
                    f"search {created.search_id} did not end in {self._timeout_s:.0f}s"
                )
            time.sleep(self._poll_s)

    def _upload_feedback(self, dataset_name: str, serving, label: str, alert_id: str) -> int:
        """Upload the model's rows with feedback as a new version of its dataset (JSON Lines,
        which keeps numbers, strings and booleans apart); returns the version number."""
        table = self._feedback_rows(serving.model_name, list(serving.inputs), label)
        rows = len(table[label])
        names = list(table)
        lines = (
            json.dumps(dict(zip(names, map(_json_cell, cells), strict=True)), allow_nan=False)
            for cells in zip(*table.values(), strict=True)
        )
        uploaded = self._dataset_sdk.upload(
            io.BytesIO("\n".join(lines).encode()),
            name=dataset_name,
            description=f"{rows} rows of {serving.model_name} predictions with feedback"
            + (f", for alert {alert_id}" if alert_id else ""),
            format="jsonl",
            label_column=label,
            tags={"source": "loopml-metrics-feedback", "model": serving.model_name},
            filename=f"{serving.model_name}-feedback.jsonl",
        )
        return uploaded.version.ref.version

    def _score_on_holdout(self, search, serving, outcome: RetrainOutcome) -> str:
        """Fill serving_score and candidate_score; returns how they were measured."""
        metric = outcome.metric
        try:
            pages, actual = self._holdout(search, serving)
            if (
                pages is not None
                and metric in performance.CLASSIFICATION_METRICS + performance.REGRESSION_METRICS
            ):
                outcome.serving_score = self._score(
                    serving.model_name, serving.version, pages, actual, metric
                )
                outcome.candidate_score = self._score(
                    serving.model_name, outcome.new_version, pages, actual, metric
                )
                return f"both scored on the {len(actual)} test rows of split {search.spec.split_id}"
        except (LoopmlClientError, errors.LoopmlError) as exc:
            log.warning("holdout scoring failed, using the registry's test scores: %s", exc)
        outcome.candidate_score = _test_score(search.result.test_metrics, metric)
        outcome.serving_score = _test_score([cv.to_score(s) for s in serving.training_metrics], metric)
        return "compared on the TEST scores recorded at training (not the same holdout)"

    def _holdout(self, search, serving):
        split_id = search.spec.split_id
        if not split_id:
            return None, None
        label = search.spec.label_column or serving.label_column
        columns = [*serving.inputs, label]
        request = dataset_service_pb2.PreviewDatasetRequest(
            dataset=search.spec.dataset,
            mode=dataset_service_pb2.PREVIEW_MODE_HEAD,
            columns=columns,
            split_id=split_id,
            part=dataset_pb2.SPLIT_PART_TEST,
            page_size=1000,
        )
        pages, actual = [], []
        while len(actual) < HOLDOUT_ROWS:
            page = self._dataset.call("PreviewDataset", request)
            rows = page.rows.row_count
            pages.append(
                value_pb2.Table(columns=[c for c in page.rows.columns if c.name != label], row_count=rows)
            )
            actual.extend(
                next((cv.column(c, rows) for c in page.rows.columns if c.name == label), [None] * rows)
            )
            if not page.next_page_token:
                break
            request.page_token = page.next_page_token
        return (pages, actual) if actual else (None, None)

    def _score(self, model: str, version: int, pages, actual: list, metric: str) -> float:
        """`metric` of one version over the holdout pages, predicted through inference."""
        predicted, probs, classes = [], [], []
        for table in pages:
            response = self._inference.predict_unlogged(
                prediction_service_pb2.PredictRequest(
                    model=refs_pb2.ModelRef(name=model, version=version), inputs=table
                )
            )
            predicted.extend(cv.column(response.predictions, table.row_count))
            classes = [cv.value(v) for v in response.probabilities.class_labels]
            if classes:
                matrix = np.asarray(response.probabilities.values, dtype=float).reshape(
                    table.row_count, len(classes)
                )
                probs.extend(matrix.tolist())
        value = performance.score(metric, actual, predicted, probs if classes else None, classes)
        if value is None:
            raise errors.FailedPrecondition(f"cannot compute {metric} from the predictions")
        return value


def _json_cell(value):
    """Non-finite numbers are missing cells (JSON has no NaN)."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _test_score(scores, metric: str) -> float:
    for s in scores:
        if cv.METRIC_NAMES.get(s.metric) == metric and s.evaluation_set == metric_pb2.EVALUATION_SET_TEST:
            return s.value
    return math.nan
