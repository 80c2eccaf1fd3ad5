"""The Open Inference Protocol stubs keep the spec's wire contract, so tritonclient and KServe clients work.

The expected names and numbers below are typed from the public specification (kserve/open-inference-
protocol open_inference_grpc.proto; repository extension from Triton's grpc_service.proto), not read
from our .proto file, so a renumbered or renamed field fails here.
"""

from __future__ import annotations

import struct
import subprocess
import textwrap
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from loopml.oip.v2 import open_inference_pb2 as oip
from loopml.oip.v2 import open_inference_pb2_grpc as oip_grpc

SERVICE = "inference.GRPCInferenceService"
RPCS = {
    "ServerLive": ("ServerLiveRequest", "ServerLiveResponse"),
    "ServerReady": ("ServerReadyRequest", "ServerReadyResponse"),
    "ModelReady": ("ModelReadyRequest", "ModelReadyResponse"),
    "ServerMetadata": ("ServerMetadataRequest", "ServerMetadataResponse"),
    "ModelMetadata": ("ModelMetadataRequest", "ModelMetadataResponse"),
    "ModelInfer": ("ModelInferRequest", "ModelInferResponse"),
    "RepositoryIndex": ("RepositoryIndexRequest", "RepositoryIndexResponse"),
    "RepositoryModelLoad": ("RepositoryModelLoadRequest", "RepositoryModelLoadResponse"),
    "RepositoryModelUnload": ("RepositoryModelUnloadRequest", "RepositoryModelUnloadResponse"),
}

T = FieldDescriptor
PARAMS = "map"  # a map<string, ...> field
# message full name -> {field name: (number, type, repeated)}
SPEC: dict[str, dict[str, tuple[int, object, bool]]] = {
    "ServerLiveRequest": {},
    "ServerLiveResponse": {"live": (1, T.TYPE_BOOL, False)},
    "ServerReadyRequest": {},
    "ServerReadyResponse": {"ready": (1, T.TYPE_BOOL, False)},
    "ModelReadyRequest": {"name": (1, T.TYPE_STRING, False), "version": (2, T.TYPE_STRING, False)},
    "ModelReadyResponse": {"ready": (1, T.TYPE_BOOL, False)},
    "ServerMetadataRequest": {},
    "ServerMetadataResponse": {
        "name": (1, T.TYPE_STRING, False),
        "version": (2, T.TYPE_STRING, False),
        "extensions": (3, T.TYPE_STRING, True),
    },
    "ModelMetadataRequest": {"name": (1, T.TYPE_STRING, False), "version": (2, T.TYPE_STRING, False)},
    "ModelMetadataResponse": {
        "name": (1, T.TYPE_STRING, False),
        "versions": (2, T.TYPE_STRING, True),
        "platform": (3, T.TYPE_STRING, False),
        "inputs": (4, T.TYPE_MESSAGE, True),
        "outputs": (5, T.TYPE_MESSAGE, True),
    },
    "ModelMetadataResponse.TensorMetadata": {
        "name": (1, T.TYPE_STRING, False),
        "datatype": (2, T.TYPE_STRING, False),
        "shape": (3, T.TYPE_INT64, True),
    },
    "ModelInferRequest": {
        "model_name": (1, T.TYPE_STRING, False),
        "model_version": (2, T.TYPE_STRING, False),
        "id": (3, T.TYPE_STRING, False),
        "parameters": (4, PARAMS, True),
        "inputs": (5, T.TYPE_MESSAGE, True),
        "outputs": (6, T.TYPE_MESSAGE, True),
        "raw_input_contents": (7, T.TYPE_BYTES, True),
    },
    "ModelInferRequest.InferInputTensor": {
        "name": (1, T.TYPE_STRING, False),
        "datatype": (2, T.TYPE_STRING, False),
        "shape": (3, T.TYPE_INT64, True),
        "parameters": (4, PARAMS, True),
        "contents": (5, T.TYPE_MESSAGE, False),
    },
    "ModelInferRequest.InferRequestedOutputTensor": {
        "name": (1, T.TYPE_STRING, False),
        "parameters": (2, PARAMS, True),
    },
    "ModelInferResponse": {
        "model_name": (1, T.TYPE_STRING, False),
        "model_version": (2, T.TYPE_STRING, False),
        "id": (3, T.TYPE_STRING, False),
        "parameters": (4, PARAMS, True),
        "outputs": (5, T.TYPE_MESSAGE, True),
        "raw_output_contents": (6, T.TYPE_BYTES, True),
    },
    "ModelInferResponse.InferOutputTensor": {
        "name": (1, T.TYPE_STRING, False),
        "datatype": (2, T.TYPE_STRING, False),
        "shape": (3, T.TYPE_INT64, True),
        "parameters": (4, PARAMS, True),
        "contents": (5, T.TYPE_MESSAGE, False),
    },
    "InferParameter": {
        "bool_param": (1, T.TYPE_BOOL, False),
        "int64_param": (2, T.TYPE_INT64, False),
        "string_param": (3, T.TYPE_STRING, False),
        "double_param": (4, T.TYPE_DOUBLE, False),
        "uint64_param": (5, T.TYPE_UINT64, False),
    },
    "InferTensorContents": {
        "bool_contents": (1, T.TYPE_BOOL, True),
        "int_contents": (2, T.TYPE_INT32, True),
        "int64_contents": (3, T.TYPE_INT64, True),
        "uint_contents": (4, T.TYPE_UINT32, True),
        "uint64_contents": (5, T.TYPE_UINT64, True),
        "fp32_contents": (6, T.TYPE_FLOAT, True),
        "fp64_contents": (7, T.TYPE_DOUBLE, True),
        "bytes_contents": (8, T.TYPE_BYTES, True),
    },
    "ModelRepositoryParameter": {
        "bool_param": (1, T.TYPE_BOOL, False),
        "int64_param": (2, T.TYPE_INT64, False),
        "string_param": (3, T.TYPE_STRING, False),
        "bytes_param": (4, T.TYPE_BYTES, False),
    },
    "RepositoryIndexRequest": {
        "repository_name": (1, T.TYPE_STRING, False),
        "ready": (2, T.TYPE_BOOL, False),
    },
    "RepositoryIndexResponse": {"models": (1, T.TYPE_MESSAGE, True)},
    "RepositoryIndexResponse.ModelIndex": {
        "name": (1, T.TYPE_STRING, False),
        "version": (2, T.TYPE_STRING, False),
        "state": (3, T.TYPE_STRING, False),
        "reason": (4, T.TYPE_STRING, False),
    },
    "RepositoryModelLoadRequest": {
        "repository_name": (1, T.TYPE_STRING, False),
        "model_name": (2, T.TYPE_STRING, False),
        "parameters": (3, PARAMS, True),
    },
    "RepositoryModelLoadResponse": {},
    "RepositoryModelUnloadRequest": {
        "repository_name": (1, T.TYPE_STRING, False),
        "model_name": (2, T.TYPE_STRING, False),
        "parameters": (3, PARAMS, True),
    },
    "RepositoryModelUnloadResponse": {},
}
# Oneofs of the spec: message -> (oneof name, members)
SPEC_ONEOFS = {
    "InferParameter": (
        "parameter_choice",
        {"bool_param", "int64_param", "string_param", "double_param", "uint64_param"},
    ),
    "ModelRepositoryParameter": (
        "parameter_choice",
        {"bool_param", "int64_param", "string_param", "bytes_param"},
    ),
}
# Map value types of the `parameters` fields.
SPEC_MAP_VALUES = {
    "ModelInferRequest": "inference.InferParameter",
    "ModelInferRequest.InferInputTensor": "inference.InferParameter",
    "ModelInferRequest.InferRequestedOutputTensor": "inference.InferParameter",
    "ModelInferResponse": "inference.InferParameter",
    "ModelInferResponse.InferOutputTensor": "inference.InferParameter",
    "RepositoryModelLoadRequest": "inference.ModelRepositoryParameter",
    "RepositoryModelUnloadRequest": "inference.ModelRepositoryParameter",
}


def _all_messages() -> dict[str, Descriptor]:
    found: dict[str, Descriptor] = {}

    def visit(desc: Descriptor) -> None:
        if desc.GetOptions().map_entry:
            return
        found[desc.full_name.removeprefix("inference.")] = desc
        for nested in desc.nested_types:
            visit(nested)

    for desc in oip.DESCRIPTOR.message_types_by_name.values():
        visit(desc)
    return found


def test_package_and_service_names() -> None:
    assert oip.DESCRIPTOR.package == "inference"
    service = oip.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert service.full_name == SERVICE
    methods = {m.name: (m.input_type.name, m.output_type.name) for m in service.methods}
    assert methods == RPCS
    for method in service.methods:
        assert not method.client_streaming and not method.server_streaming, method.name


def test_messages_match_the_spec_exactly() -> None:
    messages = _all_messages()
    assert set(messages) == set(SPEC), "no message may be added to or removed from the spec"
    for name, expected in SPEC.items():
        desc = messages[name]
        actual = {}
        for field in desc.fields:
            repeated = field.is_repeated
            is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
            actual[field.name] = (field.number, PARAMS if is_map else field.type, repeated)
        assert actual == expected, name


def test_oneofs_and_map_values_match_the_spec() -> None:
    messages = _all_messages()
    for name, (oneof, members) in SPEC_ONEOFS.items():
        desc = messages[name]
        assert [o.name for o in desc.oneofs] == [oneof]
        assert {f.name for f in desc.oneofs_by_name[oneof].fields} == members
    for name, value_type in SPEC_MAP_VALUES.items():
        entry = messages[name].fields_by_name["parameters"].message_type
        assert entry.fields_by_name["key"].type == FieldDescriptor.TYPE_STRING
        assert entry.fields_by_name["value"].message_type.full_name == value_type


def test_spot_checks() -> None:
    assert oip.ModelInferRequest.DESCRIPTOR.fields_by_name["raw_input_contents"].number == 7
    assert oip.ModelInferResponse.DESCRIPTOR.fields_by_name["raw_output_contents"].number == 6
    assert oip.InferTensorContents.DESCRIPTOR.fields_by_name["fp32_contents"].number == 6
    assert oip.InferTensorContents.DESCRIPTOR.fields_by_name["bytes_contents"].number == 8
    assert oip.RepositoryModelLoadRequest.DESCRIPTOR.fields_by_name["parameters"].number == 3


class _EchoServicer(oip_grpc.GRPCInferenceServiceServicer):
    """Answers ServerLive, and describes what it decoded from ModelInfer in the response id."""

    def ServerLive(
        self, request: oip.ServerLiveRequest, context: grpc.ServicerContext
    ) -> oip.ServerLiveResponse:
        return oip.ServerLiveResponse(live=True)

    def ModelInfer(
        self, request: oip.ModelInferRequest, context: grpc.ServicerContext
    ) -> oip.ModelInferResponse:
        tensor = request.inputs[0]
        summary = [
            request.model_name,
            tensor.name,
            tensor.datatype,
            ",".join(map(str, tensor.shape)),
            ",".join(f"{v:g}" for v in tensor.contents.fp32_contents),
            ",".join(r.hex() for r in request.raw_input_contents),
        ]
        return oip.ModelInferResponse(id="|".join(summary))


@pytest.fixture
def oip_port() -> Iterator[int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    oip_grpc.add_GRPCInferenceServiceServicer_to_server(_EchoServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(grace=None)


def _len(data: bytes) -> bytes:
    assert len(data) < 128
    return bytes([len(data)])


def _field(number: int, payload: bytes) -> bytes:  # length-delimited field
    return bytes([(number << 3) | 2]) + _len(payload) + payload


def test_method_paths_and_field_numbers_on_the_wire(oip_port: int) -> None:
    """Hand-encoded bytes, sent to the full method paths a foreign client uses."""
    with grpc.insecure_channel(f"127.0.0.1:{oip_port}") as channel:
        live = channel.unary_unary(f"/{SERVICE}/ServerLive")(b"", timeout=10)
        assert live == b"\x08\x01"  # field 1 (live), varint true

        floats = struct.pack("<2f", 1.5, -2.0)
        raw = struct.pack("<2f", 3.0, 4.0)
        tensor = (
            _field(1, b"x")  # name
            + _field(2, b"FP32")  # datatype
            + _field(3, b"\x01\x02")  # shape, packed int64 [1, 2]
            + _field(5, _field(6, floats))  # contents.fp32_contents (packed float)
        )
        # model_name, inputs, raw_input_contents
        request = _field(1, b"m") + _field(5, tensor) + _field(7, raw)
        reply = channel.unary_unary(f"/{SERVICE}/ModelInfer")(request, timeout=10)
        assert reply[0] == (3 << 3) | 2  # field 3: id
        described = reply[2:].decode()
        assert described == f"m|x|FP32|1,2|1.5,-2|{raw.hex()}"

        with pytest.raises(grpc.RpcError) as unimplemented:
            channel.unary_unary(f"/{SERVICE}/RepositoryIndex")(b"", timeout=10)
        assert unimplemented.value.code() == grpc.StatusCode.UNIMPLEMENTED


#: The interpreter of the virtualenv that `make install` gives tritonclient.
TRITON_PYTHON = Path(__file__).resolve().parents[2] / ".venv-triton" / "bin" / "python"

_TRITON_CLIENT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tritonclient.grpc as tc

    client = tc.InferenceServerClient(f"127.0.0.1:{sys.argv[1]}")
    assert client.is_server_live()
    tensor = tc.InferInput("x", [1, 2], "FP32")
    tensor.set_data_from_numpy(np.array([[3.0, 4.0]], dtype=np.float32))
    print(client.infer("m", [tensor]).get_response().id)
    """
)


def test_tritonclient_talks_to_the_generated_service(oip_port: int) -> None:
    # tritonclient registers its own copy of package `inference` in protobuf's default descriptor
    # pool, so it cannot be imported in the same process as loopml.oip.v2, and its protobuf pin
    # collides with ours: `make install` gives it its own virtualenv, run here as a child process.
    assert TRITON_PYTHON.exists(), f"{TRITON_PYTHON} missing: run `make install`"
    result = subprocess.run(
        [str(TRITON_PYTHON), "-c", _TRITON_CLIENT, str(oip_port)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    raw = struct.pack("<2f", 3.0, 4.0).hex()
    assert result.stdout.strip() == f"m|x|FP32|1,2||{raw}"
