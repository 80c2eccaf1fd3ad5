"""Client of the inference service: predictions over named columns, and model loading."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import grpc
from google.protobuf import duration_pb2, struct_pb2

from loopml.client.base import ServiceClient
from loopml.client.errors import from_rpc_error
from loopml.common.v1 import refs_pb2, value_pb2
from loopml.inference.v1 import prediction_service_pb2 as pb
from loopml.inference.v1 import prediction_service_pb2_grpc, serving_pb2
from loopml.oip.v2 import open_inference_pb2_grpc

Rows = Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]]
#: Call metadata that keeps predictions out of the server's prediction log when `false`.
LOG_PREDICTION_METADATA = "loopml-log-prediction"


@dataclass
class Prediction:
    """One answered request: a prediction per row, class probabilities (classifiers), who answered."""

    request_id: str
    model_name: str
    model_version: int
    predictions: list
    class_labels: list = field(default_factory=list)
    #: One list per row, ordered as class_labels; empty when not computed.
    probabilities: list[list[float]] = field(default_factory=list)
    latency_s: float = 0.0

    def as_dict(self) -> dict:
        return {
            "request_id": self.request_id,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "predictions": self.predictions,
            "class_labels": self.class_labels,
            "probabilities": self.probabilities,
            "latency_s": self.latency_s,
        }


def model_ref(name: str, *, version: int = 0, alias: str = "", latest: bool = False) -> refs_pb2.ModelRef:
    """A ModelRef: one of version, alias or latest; none given means the alias `production`."""
    if version:
        return refs_pb2.ModelRef(name=name, version=version)
    if latest:
        return refs_pb2.ModelRef(name=name, latest=True)
    return refs_pb2.ModelRef(name=name, alias=alias or "production")


def _column(name: str, cells: list) -> value_pb2.Column:
    """A typed Column from Python cells (None = missing; NaN stays a value)."""
    column = value_pb2.Column(name=name)
    present = [c for c in cells if c is not None]
    nulls = [i for i, c in enumerate(cells) if c is None]
    kinds = {
        bool
        if isinstance(c, bool)
        else int
        if isinstance(c, int)
        else float
        if isinstance(c, float)
        else str
        if isinstance(c, str)
        else object
        for c in present
    }
    if not present:
        pass  # every cell missing: no values
    elif kinds == {bool}:
        column.bool_values.values.extend([bool(c) if c is not None else False for c in cells])
    elif kinds == {int}:
        column.int64_values.values.extend([c if c is not None else 0 for c in cells])
    elif kinds <= {int, float}:
        column.double_values.values.extend([float(c) if c is not None else 0.0 for c in cells])
    elif kinds == {str}:
        column.string_values.values.extend([c if c is not None else "" for c in cells])
    else:
        column.mixed_values.values.extend([_value(c) for c in cells])
        return column
    column.null_indices.extend(nulls)
    return column


def _value(cell) -> value_pb2.Value:
    if cell is None:
        return value_pb2.Value(null_value=struct_pb2.NULL_VALUE)
    if isinstance(cell, bool):
        return value_pb2.Value(bool_value=cell)
    if isinstance(cell, int):
        return value_pb2.Value(int64_value=cell)
    if isinstance(cell, float):
        return value_pb2.Value(double_value=cell)
    if isinstance(cell, datetime):
        value = value_pb2.Value()
        value.timestamp_value.FromDatetime(cell)
        return value
    return value_pb2.Value(string_value=str(cell))


def to_table(rows: Rows) -> value_pb2.Table:
    """Rows (a list of {column: value}) or columns ({column: [values]}) as a Table."""
    if isinstance(rows, Mapping):
        columns = {name: list(values) for name, values in rows.items()}
        count = len(next(iter(columns.values()))) if columns else 0
    else:
        names: list[str] = []
        for row in rows:
            names.extend(n for n in row if n not in names)
        columns = {name: [row.get(name) for row in rows] for name in names}
        count = len(rows)
    return value_pb2.Table(columns=[_column(n, v) for n, v in columns.items()], row_count=count)


def value_of(value: value_pb2.Value):
    kind = value.WhichOneof("kind")
    if kind in (None, "null_value"):
        return None
    if kind == "timestamp_value":
        return value.timestamp_value.ToDatetime()
    return getattr(value, kind)


def column_values(column: value_pb2.Column) -> list:
    which = column.WhichOneof("values")
    if which is None:
        return [None] * len(column.null_indices)
    if which == "mixed_values":
        return [value_of(v) for v in column.mixed_values.values]
    values = list(getattr(column, which).values)
    if which == "timestamp_values":
        values = [v.ToDatetime() for v in values]
    for index in column.null_indices:
        values[index] = None
    return values


def prediction_from_proto(response: pb.PredictResponse) -> Prediction:
    labels = [value_of(v) for v in response.probabilities.class_labels]
    flat = list(response.probabilities.values)
    width = len(labels)
    probabilities = [flat[i : i + width] for i in range(0, len(flat), width)] if width else []
    return Prediction(
        response.request_id,
        response.model_name,
        response.model_version,
        column_values(response.predictions),
        labels,
        probabilities,
        response.latency.ToTimedelta().total_seconds(),
    )


def loaded_model_dict(model: serving_pb2.LoadedModel) -> dict:
    selector = model.model.WhichOneof("selector")
    return {
        "model": model.model.name,
        "selector": {"alias": model.model.alias, "version": model.model.version, "latest": "latest"}.get(
            selector, ""
        ),
        "state": serving_pb2.LoadState.Name(model.state).removeprefix("LOAD_STATE_"),
        "memory_bytes": model.memory_bytes,
        "batching": {
            "enabled": model.batching.enabled,
            "max_batch_size": model.batching.max_batch_size,
            "max_delay_s": model.batching.max_delay.ToTimedelta().total_seconds(),
        },
        "versions": [
            {
                "version": v.version,
                "weight": v.weight,
                "state": serving_pb2.LoadState.Name(v.state).removeprefix("LOAD_STATE_"),
                "sha256": v.sha256,
                "last_error": v.last_error,
            }
            for v in model.versions
        ],
    }


def _log_metadata(log_prediction: bool) -> tuple[tuple[str, str], ...] | None:
    return None if log_prediction else ((LOG_PREDICTION_METADATA, "false"),)


class InferenceClient(ServiceClient):
    """Predictions (`predict`, `predict_stream`) and model management (`load`, `unload`, `list_loaded`).

    `oip` is a raw Open Inference Protocol stub on the same channel.
    """

    service = "inference"
    stub_class = prediction_service_pb2_grpc.PredictionServiceStub
    full_name = pb.DESCRIPTOR.services_by_name["PredictionService"].full_name

    @property
    def oip(self) -> open_inference_pb2_grpc.GRPCInferenceServiceStub:
        return open_inference_pb2_grpc.GRPCInferenceServiceStub(self._channel)

    def predict_request(
        self,
        model: str,
        rows: Rows,
        *,
        version: int = 0,
        alias: str = "",
        latest: bool = False,
        request_id: str = "",
        omit_probabilities: bool = False,
        labels: Mapping[str, str] | None = None,
    ) -> pb.PredictRequest:
        return pb.PredictRequest(
            model=model_ref(model, version=version, alias=alias, latest=latest),
            inputs=to_table(rows),
            request_id=request_id,
            omit_probabilities=omit_probabilities,
            labels=dict(labels or {}),
        )

    def predict(
        self,
        model: str,
        rows: Rows,
        *,
        timeout: float | None = None,
        log_prediction: bool = True,
        **options,
    ) -> Prediction:
        """Predicts `rows` with `model` (by `version=`, `alias=` or `latest=True`; default production).

        `log_prediction=False` keeps the request out of the server's prediction log (scoring that
        is not live traffic, e.g. holdout rows)."""
        request = self.predict_request(model, rows, **options)
        try:
            response = self.stub.Predict(
                request, timeout=self._timeout(timeout), metadata=_log_metadata(log_prediction)
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        return prediction_from_proto(response)

    def predict_stream(
        self,
        requests: Iterable[pb.PredictRequest],
        *,
        timeout: float | None = None,
        log_prediction: bool = True,
    ) -> Iterator:
        """One result per request, in order: a `Prediction`, or a `PredictError` message for a bad
        request. `log_prediction=False` keeps the whole stream out of the prediction log."""
        messages = (pb.PredictStreamRequest(request=r) for r in requests)
        try:
            responses = self.stub.PredictStream(
                messages, timeout=self._timeout(timeout), metadata=_log_metadata(log_prediction)
            )
            for response in responses:
                if response.WhichOneof("result") == "response":
                    yield prediction_from_proto(response.response)
                else:
                    yield response.error
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    def load(
        self,
        model: str,
        *,
        version: int = 0,
        alias: str = "",
        latest: bool = False,
        canary_version: int = 0,
        canary_weight: float = 0.0,
        batching: bool | None = None,
        max_batch_size: int = 0,
        max_delay_s: float | None = None,
        timeout: float | None = None,
    ) -> dict:
        request = pb.LoadModelRequest(model=model_ref(model, version=version, alias=alias, latest=latest))
        if canary_version:
            request.canary.CopyFrom(model_ref(model, version=canary_version))
            request.canary_weight = canary_weight
        if batching is not None:
            request.batching.enabled = batching
            request.batching.max_batch_size = max_batch_size
            if max_delay_s is not None:
                delay = duration_pb2.Duration()
                delay.FromNanoseconds(int(max_delay_s * 1e9))
                request.batching.max_delay.CopyFrom(delay)
        return loaded_model_dict(self.call("LoadModel", request, timeout=timeout).model)

    def unload(
        self,
        model: str,
        *,
        version: int = 0,
        alias: str = "",
        latest: bool = False,
        timeout: float | None = None,
    ) -> None:
        request = pb.UnloadModelRequest(model=model_ref(model, version=version, alias=alias, latest=latest))
        self.call("UnloadModel", request, timeout=timeout)

    def list_loaded(self, model_name: str = "", *, timeout: float | None = None) -> dict:
        """Every loaded model (all pages) and the memory they hold."""
        models, token = [], ""
        while True:
            response = self.call(
                "ListLoadedModels",
                pb.ListLoadedModelsRequest(model_name=model_name, page_token=token, page_size=1000),
                timeout=timeout,
            )
            models.extend(loaded_model_dict(m) for m in response.models)
            token = response.next_page_token
            if not token:
                return {
                    "models": models,
                    "memory_used_bytes": response.memory_used_bytes,
                    "memory_limit_bytes": response.memory_limit_bytes,
                }
