"""Protobuf <-> domain converters of the PredictionService (loopml.inference.v1) messages.

The Open Inference Protocol's tensors have their own module, `oip_convert`.
"""

from __future__ import annotations

from datetime import UTC

import numpy as np
import pandas as pd
from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2

from loopml.common.v1 import refs_pb2, value_pb2
from loopml.inference.v1 import prediction_service_pb2 as pb
from loopml.inference.v1 import serving_pb2
from loopml.runtime.errors import InvalidArgument
from loopml.services.inference.core import (
    BatchingPolicy,
    Deployment,
    InputBatch,
    InputColumn,
    ModelRef,
    PredictResult,
)

_STATES = {
    "READY": serving_pb2.LOAD_STATE_READY,
    "LOADING": serving_pb2.LOAD_STATE_LOADING,
    "FAILED": serving_pb2.LOAD_STATE_FAILED,
    "UNLOADING": serving_pb2.LOAD_STATE_UNLOADING,
}


# -- references and settings ----------------------------------------------------------------
def model_ref(ref: refs_pb2.ModelRef, field: str = "model") -> ModelRef:
    if not ref.name:
        raise InvalidArgument(f"{field}.name", "a model name is required")
    selector = ref.WhichOneof("selector")
    if selector == "version":
        if ref.version <= 0:
            raise InvalidArgument(f"{field}.version", f"must be positive, got {ref.version}")
        return ModelRef(ref.name, version=ref.version)
    if selector == "latest":
        return ModelRef(ref.name, latest=True)
    if selector == "alias":
        if not ref.alias:
            raise InvalidArgument(f"{field}.alias", "an alias must not be empty")
        return ModelRef(ref.name, alias=ref.alias)
    return ModelRef(ref.name)


def model_ref_to_proto(ref: ModelRef) -> refs_pb2.ModelRef:
    if ref.version:
        return refs_pb2.ModelRef(name=ref.name, version=ref.version)
    if ref.latest:
        return refs_pb2.ModelRef(name=ref.name, latest=True)
    return refs_pb2.ModelRef(name=ref.name, alias=ref.alias)


def batching(config: serving_pb2.BatchingConfig, default: BatchingPolicy) -> BatchingPolicy:
    if config.max_batch_size < 0:
        raise InvalidArgument("batching.max_batch_size", "must not be negative")
    delay = (
        config.max_delay.ToTimedelta().total_seconds()
        if config.HasField("max_delay")
        else default.max_delay_s
    )
    if delay < 0:
        raise InvalidArgument("batching.max_delay", "must not be negative")
    return BatchingPolicy(config.enabled, config.max_batch_size or default.max_batch_size, delay)


def batching_to_proto(policy: BatchingPolicy) -> serving_pb2.BatchingConfig:
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(int(policy.max_delay_s * 1e9))
    return serving_pb2.BatchingConfig(
        enabled=policy.enabled, max_batch_size=policy.max_batch_size, max_delay=delay
    )


# -- tables -----------------------------------------------------------------------------------
def _value(value: value_pb2.Value):
    kind = value.WhichOneof("kind")
    if kind in (None, "null_value"):
        return None
    if kind == "timestamp_value":
        return pd.Timestamp(value.timestamp_value.ToDatetime(tzinfo=UTC))
    return getattr(value, kind)


def input_batch(table, field: str = "inputs") -> InputBatch:
    """The request's Table as domain columns; shape problems name the column."""
    if table.row_count < 0:
        raise InvalidArgument(f"{field}.row_count", "must not be negative")
    columns: dict[str, InputColumn] = {}
    row_count = table.row_count
    for index, column in enumerate(table.columns):
        name = column.name
        if not name:
            raise InvalidArgument(f"{field}.columns[{index}].name", "a column needs a name")
        if name in columns:
            raise InvalidArgument(f"{field}.{name}", "column given twice")
        which = column.WhichOneof("values")
        if which is None:
            values: list | np.ndarray = [None] * row_count
            kind = "null"
        elif which == "mixed_values":
            values, kind = [_value(v) for v in column.mixed_values.values], "mixed"
        elif which == "timestamp_values":
            values = [pd.Timestamp(t.ToDatetime(tzinfo=UTC)) for t in column.timestamp_values.values]
            kind = "timestamp"
        elif which == "string_values":
            values, kind = list(column.string_values.values), "string"
        else:
            kind = {"double_values": "double", "int64_values": "int64", "bool_values": "bool"}[which]
            values = np.asarray(getattr(column, which).values)
        if not row_count and index == 0:
            row_count = len(values)  # row_count may be left out when there are columns
        nulls = None
        if column.null_indices:
            indices = np.asarray(column.null_indices)
            if (
                (indices < 0).any()
                or (indices >= max(row_count, len(values))).any()
                or (np.diff(indices) <= 0).any()
            ):
                raise InvalidArgument(
                    f"{field}.{name}.null_indices", "must be ascending row numbers within the table"
                )
            nulls = np.zeros(len(values), dtype=bool)
            nulls[indices[indices < len(values)]] = True
        columns[name] = InputColumn(kind, values, nulls)
    return InputBatch(columns, row_count)


def value_to_proto(value) -> value_pb2.Value:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return value_pb2.Value(null_value=struct_pb2.NULL_VALUE)
    if isinstance(value, (bool, np.bool_)):
        return value_pb2.Value(bool_value=bool(value))
    if isinstance(value, (int, np.integer)):
        return value_pb2.Value(int64_value=int(value))
    if isinstance(value, (float, np.floating)):
        return value_pb2.Value(double_value=float(value))
    return value_pb2.Value(string_value=str(value))


def column_to_proto(name: str, values) -> value_pb2.Column:
    """A typed Column from a 1-D array or list (typed by its cells; None or NaN-in-object = missing)."""
    array = np.asarray(values)
    column = value_pb2.Column(name=name)
    if array.dtype.kind == "f":
        column.double_values.values.extend(array.tolist())
        return column
    if array.dtype.kind in "iu":
        column.int64_values.values.extend(array.tolist())
        return column
    if array.dtype.kind == "b":
        column.bool_values.values.extend(array.tolist())
        return column
    cells = [c.item() if isinstance(c, np.generic) else c for c in array.tolist()]  # numpy scalars -> Python
    present = [c for c in cells if c is not None and not (isinstance(c, float) and np.isnan(c))]
    nulls = [i for i, c in enumerate(cells) if c is None or (isinstance(c, float) and np.isnan(c))]
    kinds = {type(c) for c in present}
    if kinds <= {bool}:
        column.bool_values.values.extend([bool(c) if c in (True, False) else False for c in cells])
    elif kinds <= {int}:
        column.int64_values.values.extend([c if isinstance(c, int) else 0 for c in cells])
    elif kinds <= {float, int}:
        column.double_values.values.extend([float(c) if i not in nulls else 0.0 for i, c in enumerate(cells)])
    elif kinds <= {pd.Timestamp}:
        for i, c in enumerate(cells):
            stamp = timestamp_pb2.Timestamp()
            if i not in nulls:
                stamp.FromDatetime(c.to_pydatetime())
            column.timestamp_values.values.append(stamp)
    else:
        column.string_values.values.extend(["" if i in nulls else str(c) for i, c in enumerate(cells)])
    column.null_indices.extend(nulls)
    return column


def table_to_proto(frame: pd.DataFrame) -> value_pb2.Table:
    return value_pb2.Table(
        columns=[column_to_proto(str(name), frame[name].to_numpy()) for name in frame.columns],
        row_count=len(frame),
    )


def probabilities_to_proto(class_labels: list, probabilities: np.ndarray) -> value_pb2.ClassProbabilities:
    message = value_pb2.ClassProbabilities(class_labels=[value_to_proto(c) for c in class_labels])
    message.values.extend(np.asarray(probabilities, dtype=float).ravel().tolist())
    return message


def _duration(seconds: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(int(seconds * 1e9))
    return duration


def predict_response(result: PredictResult) -> pb.PredictResponse:
    bundle = result.bundle
    prediction = result.prediction
    response = pb.PredictResponse(
        request_id=result.request_id,
        model_name=result.model_name,
        model_version=result.model_version,
        predictions=column_to_proto(bundle.label_column, prediction.predictions),
        latency=_duration(result.latency_s),
    )
    if prediction.probabilities is not None:
        response.probabilities.CopyFrom(
            probabilities_to_proto(list(bundle.class_labels), prediction.probabilities)
        )
    return response


# -- loaded models ----------------------------------------------------------------------------
def _timestamp(moment) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    if moment is not None:
        stamp.FromDatetime(moment)
    return stamp


def loaded_model(deployment: Deployment) -> serving_pb2.LoadedModel:
    versions = [
        serving_pb2.ServedVersion(
            version=v.version,
            weight=v.weight,
            state=_STATES[v.state],
            sha256=v.sha256,
            memory_bytes=v.memory_bytes,
            load_time=_timestamp(v.load_time),
            last_error=v.last_error,
        )
        for v in deployment.versions()
    ]
    return serving_pb2.LoadedModel(
        model=model_ref_to_proto(deployment.ref),
        versions=versions,
        state=serving_pb2.LOAD_STATE_READY,
        batching=batching_to_proto(deployment.policy),
        memory_bytes=deployment.memory_bytes,
        last_used_time=_timestamp(deployment.last_used_time),
    )
