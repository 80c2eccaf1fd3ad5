"""Conventions of the loopml contracts that buf lint does not check.

Read from the .proto sources (compiled with their comments), not from the generated code.
"""

from __future__ import annotations

import re
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2

from tests.protos._tools import PROTOS_DIR, compile_with_source_info, loopml_proto_files

STATUS_CODES = {code.name for code in grpc.StatusCode}
# FileDescriptorProto.service = 6, ServiceDescriptorProto.method = 2
_SERVICE_FIELD, _METHOD_FIELD = 6, 2
# An entry of an "Errors:" paragraph: a status code followed by its reason in parentheses.
_CODE_ENTRY = re.compile(r"\b([A-Z][A-Z_]*[A-Z])\s*\(")

FieldType = descriptor_pb2.FieldDescriptorProto

# Services, the RPCs every client and doc relies on, and how each streams: (client, server).
CONTRACT: dict[str, dict[str, tuple[bool, bool]]] = {
    "loopml.dataset.v1.DatasetService": {
        "UploadDataset": (True, False),
        "ImportDataset": (False, False),
        "GetDataset": (False, False),
        "ListDatasets": (False, False),
        "DeleteDataset": (False, False),
        "GetDatasetProfile": (False, False),
        "PreviewDataset": (False, False),
        "UpdateColumnRoles": (False, False),
        "CreateSplit": (False, False),
        "DownloadDataset": (False, True),
    },
    "loopml.trainer.v1.TrainerService": {
        "CreateSearch": (False, False),
        "GetSearch": (False, False),
        "ListSearches": (False, False),
        "CancelSearch": (False, False),
        "WatchSearch": (False, True),
        "GetLeaderboard": (False, False),
    },
    "loopml.registry.v1.RegistryService": {
        "CreateModel": (False, False),
        "GetModel": (False, False),
        "ListModels": (False, False),
        "DeleteModel": (False, False),
        "CreateModelVersion": (True, False),
        "GetModelVersion": (False, False),
        "ListModelVersions": (False, False),
        "DeleteModelVersion": (False, False),
        "SetAlias": (False, False),
        "DeleteAlias": (False, False),
        "ResolveModel": (False, False),
        "DownloadModelArtifact": (False, True),
        "WatchModelEvents": (False, True),
    },
    "loopml.inference.v1.PredictionService": {
        "Predict": (False, False),
        "PredictStream": (True, True),
        "LoadModel": (False, False),
        "UnloadModel": (False, False),
        "ListLoadedModels": (False, False),
    },
    "loopml.metrics.v1.MetricsService": {
        "RecordMetrics": (False, False),
        "RecordPredictions": (False, False),
        "RecordFeedback": (False, False),
        "QueryMetrics": (False, False),
        "GetModelPerformance": (False, False),
        "GetDriftReport": (False, False),
        "CreateAlertRule": (False, False),
        "ListAlertRules": (False, False),
        "ListAlerts": (False, False),
    },
}
# Paginated besides every List* and Query* RPC.
ALSO_PAGINATED = {"GetLeaderboard", "GetAliasHistory", "PreviewDataset"}


@pytest.fixture(scope="module")
def loopml_descriptors(tmp_path_factory: pytest.TempPathFactory) -> descriptor_pb2.FileDescriptorSet:
    out = tmp_path_factory.mktemp("descriptors") / "loopml.binpb"
    return compile_with_source_info(PROTOS_DIR, loopml_proto_files(), out)


def rpc_status_comment_problems(fds: descriptor_pb2.FileDescriptorSet) -> list[str]:
    """One line per loopml RPC whose leading comment does not name the status codes it returns.

    The expected form is a paragraph `Errors: CODE (why), CODE (why), ...` where every CODE is a
    gRPC status code name.
    """
    problems: list[str] = []
    for file in fds.file:
        if not file.package.startswith("loopml."):
            continue
        comments = {tuple(loc.path): loc.leading_comments for loc in file.source_code_info.location}
        for s, service in enumerate(file.service):
            for m, method in enumerate(service.method):
                where = f"{file.package}.{service.name}.{method.name}"
                comment = comments.get((_SERVICE_FIELD, s, _METHOD_FIELD, m), "")
                _, found, errors = comment.partition("Errors:")
                if not found:
                    problems.append(f"{where}: leading comment has no 'Errors:' paragraph")
                    continue
                codes = _CODE_ENTRY.findall(errors)
                if not codes:
                    problems.append(f"{where}: 'Errors:' names no status code")
                unknown = sorted(set(codes) - STATUS_CODES)
                if unknown:
                    problems.append(f"{where}: not gRPC status codes: {', '.join(unknown)}")
    return problems


def test_every_rpc_names_the_status_codes_it_returns(
    loopml_descriptors: descriptor_pb2.FileDescriptorSet,
) -> None:
    assert rpc_status_comment_problems(loopml_descriptors) == []


def test_the_comment_check_can_fail(tmp_path: Path) -> None:
    root = tmp_path / "protos"
    (root / "loopml" / "demo" / "v1").mkdir(parents=True)
    (root / "loopml" / "demo" / "v1" / "demo.proto").write_text(
        'syntax = "proto3";\n'
        "package loopml.demo.v1;\n"
        "service DemoService {\n"
        "  rpc NoComment(NoCommentRequest) returns (NoCommentResponse) {}\n"
        "  // Does things.\n"
        "  //\n"
        "  // Errors: NOT_FOUND (unknown thing), NO_SUCH_CODE (bogus).\n"
        "  rpc BadCode(BadCodeRequest) returns (BadCodeResponse) {}\n"
        "  // Errors: none worth naming.\n"
        "  rpc NoCode(NoCodeRequest) returns (NoCodeResponse) {}\n"
        "  // Errors: INVALID_ARGUMENT (bad input).\n"
        "  rpc Fine(FineRequest) returns (FineResponse) {}\n"
        "}\n"
        + "".join(
            f"message {n}Request {{}}\nmessage {n}Response {{}}\n"
            for n in ("NoComment", "BadCode", "NoCode", "Fine")
        )
    )
    fds = compile_with_source_info(root, ["loopml/demo/v1/demo.proto"], tmp_path / "demo.binpb")
    problems = rpc_status_comment_problems(fds)
    assert problems == [
        "loopml.demo.v1.DemoService.NoComment: leading comment has no 'Errors:' paragraph",
        "loopml.demo.v1.DemoService.BadCode: not gRPC status codes: NO_SUCH_CODE",
        "loopml.demo.v1.DemoService.NoCode: 'Errors:' names no status code",
    ]


def _services(fds: descriptor_pb2.FileDescriptorSet) -> dict[str, descriptor_pb2.ServiceDescriptorProto]:
    return {
        f"{file.package}.{service.name}": service
        for file in fds.file
        if file.package.startswith("loopml.")
        for service in file.service
    }


def _messages(fds: descriptor_pb2.FileDescriptorSet) -> dict[str, descriptor_pb2.DescriptorProto]:
    return {f".{file.package}.{msg.name}": msg for file in fds.file for msg in file.message_type}


def test_services_carry_the_contract_rpcs(loopml_descriptors: descriptor_pb2.FileDescriptorSet) -> None:
    services = _services(loopml_descriptors)
    assert set(services) == set(CONTRACT)
    for name, rpcs in CONTRACT.items():
        methods = {m.name: (m.client_streaming, m.server_streaming) for m in services[name].method}
        missing = set(rpcs) - set(methods)
        assert not missing, f"{name} lacks {sorted(missing)}"
        for rpc, streaming in rpcs.items():
            assert methods[rpc] == streaming, f"{name}.{rpc} streams as {methods[rpc]}, expected {streaming}"


def _field(message: descriptor_pb2.DescriptorProto, name: str) -> descriptor_pb2.FieldDescriptorProto | None:
    return next((f for f in message.field if f.name == name), None)


def test_list_and_query_rpcs_paginate(loopml_descriptors: descriptor_pb2.FileDescriptorSet) -> None:
    messages = _messages(loopml_descriptors)
    checked = 0
    for service_name, service in _services(loopml_descriptors).items():
        for method in service.method:
            if not (method.name.startswith(("List", "Query")) or method.name in ALSO_PAGINATED):
                continue
            checked += 1
            where = f"{service_name}.{method.name}"
            request, response = messages[method.input_type], messages[method.output_type]
            size, token = _field(request, "page_size"), _field(request, "page_token")
            next_token = _field(response, "next_page_token")
            assert size is not None and size.type == FieldType.TYPE_INT32, f"{where}: page_size"
            assert token is not None and token.type == FieldType.TYPE_STRING, f"{where}: page_token"
            assert next_token is not None and next_token.type == FieldType.TYPE_STRING, (
                f"{where}: next_page_token"
            )
    assert checked >= 13  # 9 List*, QueryMetrics and the three above


def test_streams_frame_a_header_before_the_bytes(
    loopml_descriptors: descriptor_pb2.FileDescriptorSet,
) -> None:
    """Byte streams are a oneof of a header message (field 1) and raw chunks (field 2)."""
    messages = _messages(loopml_descriptors)
    for name in (
        ".loopml.dataset.v1.UploadDatasetRequest",
        ".loopml.dataset.v1.DownloadDatasetResponse",
        ".loopml.registry.v1.CreateModelVersionRequest",
        ".loopml.registry.v1.DownloadModelArtifactResponse",
    ):
        message = messages[name]
        header, chunk = _field(message, "header"), _field(message, "chunk")
        assert header is not None and header.number == 1 and header.type == FieldType.TYPE_MESSAGE, name
        assert chunk is not None and chunk.number == 2 and chunk.type == FieldType.TYPE_BYTES, name
        assert header.HasField("oneof_index") and header.oneof_index == chunk.oneof_index, name
