"""The interceptor's upload limit counts each streamed message at its wire size."""

from __future__ import annotations

from types import SimpleNamespace

import grpc
import pytest

from loopml.runtime import errors
from loopml.runtime.grpcserver.interceptors import CallInterceptor


class _Parsed:
    """A deserialized message that refuses to be serialized again to measure it."""

    def __init__(self, raw: bytes):
        self.raw = raw

    def ByteSize(self) -> int:  # noqa: N802 - protobuf's name
        raise AssertionError("the limit must not re-serialize a message to measure it")


def _served(max_upload_bytes: int) -> tuple[grpc.RpcMethodHandler, list[bytes]]:
    received: list[bytes] = []

    def upload(requests, context):
        for request in requests:
            received.append(request.raw)
        return "stored"

    handler = grpc.stream_unary_rpc_method_handler(upload, request_deserializer=_Parsed)
    # An open method: no token, no tracking, so the bare limit is what runs.
    details = SimpleNamespace(method="/grpc.health.v1.Health/Upload", invocation_metadata=())
    served = CallInterceptor(max_upload_bytes).intercept_service(lambda _details: handler, details)
    return served, received


def test_a_stream_within_the_limit_reaches_the_handler_parsed():
    served, received = _served(max_upload_bytes=8)
    wire = [served.request_deserializer(raw) for raw in (b"abcd", b"efgh")]
    assert served.stream_unary(iter(wire), None) == "stored"
    assert received == [b"abcd", b"efgh"]


def test_a_stream_past_the_limit_is_refused_at_the_message_that_crosses_it():
    served, received = _served(max_upload_bytes=7)
    wire = [served.request_deserializer(raw) for raw in (b"abcd", b"efgh")]
    with pytest.raises(errors.ResourceExhausted, match="exceeds the upload limit of 7 bytes"):
        served.stream_unary(iter(wire), None)
    assert received == [b"abcd"]
