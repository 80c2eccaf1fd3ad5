"""Open Inference Protocol v2 tensors <-> domain columns and predictions.

A model's OIP inputs are its signature's columns, one 1-D tensor each (shape [-1], or [-1, 1]),
named like the column: numeric -> FP64 (any FP*/INT* accepted), integer -> INT64, boolean -> BOOL,
categorical, text, identifier and datetime -> BYTES (UTF-8). A model whose inputs are all numeric
also takes one 2-D tensor named `features`, shape [rows, columns] in signature order (the fast path
load generators use). Outputs: `predictions` (typed like the class labels; FP64 for regression) and,
for classifiers, `probabilities` (FP64, [rows, classes]). Tensors go in `raw_output_contents`.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from loopml.modelkit import ModelBundle
from loopml.oip.v2 import open_inference_pb2 as oip
from loopml.runtime.errors import InvalidArgument
from loopml.services.inference.core import Deployment, InputBatch, InputColumn, ModelRef, PredictResult

MATRIX_INPUT = "features"
PREDICTIONS, PROBABILITIES = "predictions", "probabilities"

_KINDS = {
    **dict.fromkeys(("FP16", "FP32", "FP64"), "double"),
    **dict.fromkeys(("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"), "int64"),
    "BOOL": "bool",
    "BYTES": "string",
}
_RAW_DTYPES = {
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
    "INT8": "i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "BOOL": "?",
}
_CONTENTS = {
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "BOOL": "bool_contents",
    "BYTES": "bytes_contents",
}
_SIGNATURE_DATATYPES = {"numeric": "FP64", "integer": "INT64", "boolean": "BOOL"}


#: (name, version string) -> ModelRef: every request names its model, and the same ref object
#: makes the manager's lookups identity hits. Cleared when full (names come from clients).
_REFS: dict[tuple[str, str], ModelRef] = {}
_MAX_REFS = 1024


def model_ref(name: str, version: str, field: str = "model_name") -> ModelRef:
    """OIP's version string: empty -> alias production, digits -> that version, `latest`, else an alias."""
    ref = _REFS.get((name, version))
    if ref is None:
        ref = _parse_ref(name, version, field)
        if len(_REFS) >= _MAX_REFS:
            _REFS.clear()
        _REFS[(name, version)] = ref
    return ref


def _parse_ref(name: str, version: str, field: str) -> ModelRef:
    if not name:
        raise InvalidArgument(field, "a model name is required")
    if not version:
        return ModelRef(name)
    if version.isdigit():
        return ModelRef(name, version=int(version))
    if version == "latest":
        return ModelRef(name, latest=True)
    return ModelRef(name, alias=version)


def _split_bytes(raw: bytes, field: str) -> list[bytes]:
    """Triton's BYTES serialization: each element is a 4-byte little-endian length, then the bytes."""
    items, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise InvalidArgument(field, "truncated BYTES element length")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise InvalidArgument(field, f"BYTES element of {length} bytes runs past the end of the buffer")
        items.append(raw[offset : offset + length])
        offset += length
    return items


def _tensor_values(request: oip.ModelInferRequest, index: int, tensor) -> np.ndarray | list:
    field = f"inputs.{tensor.name}"
    datatype = tensor.datatype
    if datatype not in _KINDS:
        raise InvalidArgument(
            f"{field}.datatype", f"unsupported datatype {datatype!r}; supported: {sorted(_KINDS)}"
        )
    shape = list(tensor.shape)
    if not shape or any(d < 0 for d in shape):
        raise InvalidArgument(f"{field}.shape", f"needs non-negative dimensions, got {shape}")
    count = math.prod(shape)
    if request.raw_input_contents:
        if len(request.raw_input_contents) != len(request.inputs):
            raise InvalidArgument(
                "raw_input_contents",
                f"{len(request.raw_input_contents)} raw buffers for {len(request.inputs)} inputs",
            )
        raw = request.raw_input_contents[index]
        if datatype == "BYTES":
            values: np.ndarray | list = _split_bytes(raw, f"raw_input_contents[{index}]")
        else:
            dtype = np.dtype(_RAW_DTYPES[datatype])
            if len(raw) != count * dtype.itemsize:
                raise InvalidArgument(
                    f"raw_input_contents[{index}]",
                    f"{len(raw)} bytes, but {datatype} of shape {shape} needs {count * dtype.itemsize}",
                )
            values = np.frombuffer(raw, dtype=dtype)
    else:
        if datatype == "FP16":
            raise InvalidArgument(f"{field}.datatype", "FP16 is only accepted in raw_input_contents")
        contents = getattr(tensor.contents, _CONTENTS[datatype])
        values = list(contents) if datatype == "BYTES" else np.asarray(contents, dtype=_RAW_DTYPES[datatype])
    if len(values) != count:
        raise InvalidArgument(f"{field}.shape", f"shape {shape} holds {count} values, {len(values)} given")
    return values


#: numpy dtypes of the raw datatypes a `features` matrix may have (numeric kinds only).
_MATRIX_DTYPES = {
    datatype: np.dtype(raw)
    for datatype, raw in _RAW_DTYPES.items()
    if _KINDS[datatype] in ("double", "int64")
}


def _raw_matrix(request: oip.ModelInferRequest) -> np.ndarray | None:
    """The common case in one step: one well-formed `features` tensor in `raw_input_contents`.
    None for anything else, which the general path checks (and refuses with its messages)."""
    tensor = request.inputs[0]
    shape = tensor.shape
    dtype = _MATRIX_DTYPES.get(tensor.datatype)
    if dtype is None or tensor.name != MATRIX_INPUT or len(shape) != 2:
        return None
    rows, columns = shape
    raw_contents = request.raw_input_contents
    if rows < 0 or columns < 0 or len(raw_contents) != 1:
        return None
    raw = raw_contents[0]
    if len(raw) != rows * columns * dtype.itemsize:
        return None
    return np.frombuffer(raw, dtype=dtype).reshape(rows, columns)


def input_batch(request: oip.ModelInferRequest) -> InputBatch:
    if len(request.inputs) == 1:
        matrix = _raw_matrix(request)
        if matrix is not None:
            return InputBatch(matrix=matrix)
    inputs = list(request.inputs)
    if not inputs:
        raise InvalidArgument("inputs", "no input tensors")
    if len(inputs) == 1 and inputs[0].name == MATRIX_INPUT and len(inputs[0].shape) == 2:
        tensor = inputs[0]
        if _KINDS.get(tensor.datatype) not in ("double", "int64"):
            raise InvalidArgument(
                f"inputs.{MATRIX_INPUT}.datatype", f"must be numeric, got {tensor.datatype!r}"
            )
        values = _tensor_values(request, 0, tensor)
        return InputBatch(matrix=np.asarray(values).reshape(list(tensor.shape)))
    columns: dict[str, InputColumn] = {}
    rows = None
    for index, tensor in enumerate(inputs):
        field = f"inputs.{tensor.name}"
        if tensor.name in columns:
            raise InvalidArgument(field, "input given twice")
        values = _tensor_values(request, index, tensor)
        shape = list(tensor.shape)
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise InvalidArgument(
                f"{field}.shape", f"a column tensor has shape [rows] or [rows, 1], got {shape}"
            )
        if rows is None:
            rows = shape[0]
        elif shape[0] != rows:
            raise InvalidArgument(f"{field}.shape", f"{shape[0]} rows, but the first input has {rows}")
        kind = _KINDS[tensor.datatype]
        if kind == "string":
            try:
                values = [v.decode("utf-8") for v in values]
            except UnicodeDecodeError as exc:
                raise InvalidArgument(field, f"BYTES must be UTF-8: {exc}") from None
        columns[tensor.name] = InputColumn(kind, values)
    return InputBatch(columns, rows or 0)


def _label_datatype(bundle: ModelBundle) -> str:
    if bundle.task == "regression" or not bundle.class_labels:
        return "FP64"
    first = bundle.class_labels[0]
    if isinstance(first, (bool, np.bool_)):
        return "BOOL"
    if isinstance(first, (int, np.integer)):
        return "INT64"
    if isinstance(first, (float, np.floating)):
        return "FP64"
    return "BYTES"


def _raw(datatype: str, values) -> bytes:
    if datatype == "BYTES":
        parts = []
        for value in values:
            data = str(value).encode("utf-8")
            parts.append(struct.pack("<I", len(data)) + data)
        return b"".join(parts)
    return np.asarray(values, dtype=_RAW_DTYPES[datatype]).tobytes()  # tobytes copies in C order


def requested_outputs(request: oip.ModelInferRequest, bundle: ModelBundle) -> list[str]:
    available = [PREDICTIONS] + ([PROBABILITIES] if bundle.task != "regression" else [])
    names = [o.name for o in request.outputs] or available
    for index, name in enumerate(names):
        if name not in available:
            raise InvalidArgument(
                f"outputs[{index}].name", f"unknown output {name!r}; the model has {available}"
            )
    return names


def infer_response(
    request: oip.ModelInferRequest, result: PredictResult, outputs: list[str]
) -> oip.ModelInferResponse:
    bundle = result.bundle
    prediction = result.prediction
    response = oip.ModelInferResponse(
        model_name=result.model_name,
        model_version=str(result.model_version),
        id=request.id or result.request_id,
    )
    rows = len(prediction.predictions)
    for name in outputs:
        if name == PREDICTIONS:
            datatype, shape, values = _label_datatype(bundle), [rows], prediction.predictions
        else:
            values = np.asarray(prediction.probabilities, dtype=np.float64)
            datatype, shape = "FP64", list(values.shape)
        response.outputs.add(name=name, datatype=datatype, shape=shape)
        response.raw_output_contents.append(_raw(datatype, values))
    return response


def model_metadata(deployment: Deployment) -> oip.ModelMetadataResponse:
    bundle = deployment.bundle
    response = oip.ModelMetadataResponse(
        name=deployment.ref.name,
        versions=[str(v.version) for v in deployment.served()],
        platform=f"loopml_{bundle.flavor}",
    )
    for spec in bundle.inputs:
        response.inputs.add(name=spec.name, datatype=_SIGNATURE_DATATYPES.get(spec.type, "BYTES"), shape=[-1])
    response.outputs.add(name=PREDICTIONS, datatype=_label_datatype(bundle), shape=[-1])
    if bundle.task != "regression":
        response.outputs.add(name=PROBABILITIES, datatype="FP64", shape=[-1, len(bundle.class_labels)])
    return response
