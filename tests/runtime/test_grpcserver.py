"""The server bootstrap seen from a client: error mapping, request ids, auth, health, shutdown.

A tiny service with raw-bytes methods stands in for a real one, served by the real bootstrap
over a real loopback channel.
"""

from __future__ import annotations

import threading
import time
import uuid

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from loopml.runtime import errors
from loopml.runtime.grpcserver import ServiceRegistration, ServiceServer
from loopml.runtime.settings import ServiceSettings

SERVICE = "loopml.test.v1.EchoService"


def _identity(data: bytes) -> bytes:
    return data


class EchoBehaviour:
    """Echo returns its input; the first bytes of the request choose a failure to raise."""

    def __init__(self):
        self.release = threading.Event()

    def echo(self, request: bytes, context):
        if request == b"invalid":
            raise errors.InvalidArgument("header.name", "must not be empty")
        if request == b"missing":
            raise errors.NotFound("dataset", "ds-42")
        if request == b"exists":
            raise errors.AlreadyExists("model", "churn")
        if request == b"crash":
            raise ValueError("a bug")
        if request == b"slow":
            self.release.wait(10)
        return request

    def chunks(self, request: bytes, context):
        yield b"first"
        if request == b"fail-midway":
            raise errors.FailedPrecondition("gone", subject="dataset/ds-1")
        yield b"second"


def _register(behaviour: EchoBehaviour):
    def add(_servicer, server):
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    SERVICE,
                    {
                        "Echo": grpc.unary_unary_rpc_method_handler(behaviour.echo, _identity, _identity),
                        "Chunks": grpc.unary_stream_rpc_method_handler(
                            behaviour.chunks, _identity, _identity
                        ),
                    },
                ),
            )
        )

    return ServiceRegistration(SERVICE, add, behaviour)


class Probe:
    def __init__(self):
        self.healthy = True

    def __call__(self):
        if not self.healthy:
            raise ConnectionError("database did not answer")


@pytest.fixture
def served(tmp_path):
    def start(**settings):
        behaviour, probe = EchoBehaviour(), Probe()
        config = ServiceSettings(data_dir=tmp_path, health_interval_s=0.1, shutdown_grace_s=5, **settings)
        server = ServiceServer(config, [_register(behaviour)], probes={"database": probe}).start()
        channel = grpc.insecure_channel(server.address)
        started.append((server, channel))
        return server, channel, behaviour, probe

    started: list = []
    yield start
    for server, channel in started:
        behaviour_release = getattr(server, "_release", None)
        if behaviour_release:
            behaviour_release()
        channel.close()
        server.stop(grace=0)


def _echo(channel, payload: bytes, metadata=()):
    echo = channel.unary_unary(f"/{SERVICE}/Echo", _identity, _identity)
    return echo(payload, timeout=10, metadata=metadata)


def _status(error: grpc.RpcError):
    return rpc_status.from_call(error)


def test_ok_call_carries_a_request_id(served):
    _, channel, _, _ = served()
    response, call = channel.unary_unary(f"/{SERVICE}/Echo", _identity, _identity).with_call(b"hi", timeout=5)
    assert response == b"hi"
    request_id = dict(call.trailing_metadata())["x-request-id"]
    assert len(request_id) == 32


def test_every_call_gets_its_own_request_id(served):
    _, channel, _, _ = served()
    echo = channel.unary_unary(f"/{SERVICE}/Echo", _identity, _identity)
    _, given = echo.with_call(b"hi", timeout=5, metadata=[("x-request-id", "abc-123")])
    ids = [dict(echo.with_call(b"hi", timeout=5)[1].trailing_metadata())["x-request-id"] for _ in range(3)]
    assert dict(given.trailing_metadata())["x-request-id"] == "abc-123"
    assert len(set(ids)) == 3 and "abc-123" not in ids
    assert all(uuid.UUID(request_id).version == 4 for request_id in ids)


def test_a_stream_carries_a_request_id(served):
    _, channel, _, _ = served()
    stream = channel.unary_stream(f"/{SERVICE}/Chunks", _identity, _identity)(
        b"", timeout=5, metadata=[("x-request-id", "stream-7")]
    )
    assert list(stream) == [b"first", b"second"]
    assert dict(stream.trailing_metadata())["x-request-id"] == "stream-7"


def _handled(method: str, code: str) -> float:
    """The server's `loopml_grpc_server_handled_total` for one method and status, as scraped."""
    for family in text_string_to_metric_families(generate_latest().decode()):
        for sample in family.samples:
            if sample.name == "loopml_grpc_server_handled_total" and sample.labels == {
                "grpc_service": SERVICE, "grpc_method": method, "grpc_code": code,
            }:
                return sample.value
    return 0.0


def _timed(method: str) -> float:
    for family in text_string_to_metric_families(generate_latest().decode()):
        for sample in family.samples:
            if sample.name == "loopml_grpc_server_handling_seconds_count" and sample.labels == {
                "grpc_service": SERVICE, "grpc_method": method,
            }:
                return sample.value
    return 0.0


def test_calls_are_counted_by_method_and_status(served):
    _, channel, _, _ = served()
    before = {code: _handled("Echo", code) for code in ("OK", "NOT_FOUND", "INTERNAL")}
    timed, streamed = _timed("Echo"), _handled("Chunks", "FAILED_PRECONDITION")
    for payload in (b"a", b"missing", b"b", b"crash", b"c"):
        try:
            _echo(channel, payload)
        except grpc.RpcError:
            pass
    with pytest.raises(grpc.RpcError):
        list(channel.unary_stream(f"/{SERVICE}/Chunks", _identity, _identity)(b"fail-midway", timeout=5))
    assert _handled("Echo", "OK") == before["OK"] + 3
    assert _handled("Echo", "NOT_FOUND") == before["NOT_FOUND"] + 1
    assert _handled("Echo", "INTERNAL") == before["INTERNAL"] + 1
    assert _timed("Echo") == timed + 5
    assert _handled("Chunks", "FAILED_PRECONDITION") == streamed + 1


def test_client_request_id_is_kept(served):
    _, channel, _, _ = served()
    _, call = channel.unary_unary(f"/{SERVICE}/Echo", _identity, _identity).with_call(
        b"hi", timeout=5, metadata=[("x-request-id", "abc-123")]
    )
    assert dict(call.trailing_metadata())["x-request-id"] == "abc-123"


def test_invalid_argument_names_the_field(served):
    _, channel, _, _ = served()
    with pytest.raises(grpc.RpcError) as caught:
        _echo(channel, b"invalid")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "header.name" in caught.value.details()
    bad = error_details_pb2.BadRequest()
    assert _status(caught.value).details[0].Unpack(bad)
    assert bad.field_violations[0].field == "header.name"


@pytest.mark.parametrize(
    "payload, code, resource",
    [(b"missing", grpc.StatusCode.NOT_FOUND, ("dataset", "ds-42")),
     (b"exists", grpc.StatusCode.ALREADY_EXISTS, ("model", "churn"))],
)
def test_resource_errors_name_the_resource(served, payload, code, resource):
    _, channel, _, _ = served()
    with pytest.raises(grpc.RpcError) as caught:
        _echo(channel, payload)
    assert caught.value.code() == code
    info = error_details_pb2.ResourceInfo()
    assert _status(caught.value).details[0].Unpack(info)
    assert (info.resource_type, info.resource_name) == resource


def test_unexpected_error_is_internal_and_server_keeps_serving(served, caplog):
    _, channel, _, _ = served()
    with pytest.raises(grpc.RpcError) as caught:
        _echo(channel, b"crash")
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "a bug" not in caught.value.details()  # internals stay in the log
    assert "request id" in caught.value.details()
    assert dict(caught.value.trailing_metadata())["x-request-id"] in caught.value.details()
    assert any("unhandled error" in r.getMessage() for r in caplog.records)
    assert _echo(channel, b"still here") == b"still here"


def test_error_in_the_middle_of_a_stream(served):
    _, channel, _, _ = served()
    stream = channel.unary_stream(f"/{SERVICE}/Chunks", _identity, _identity)(b"fail-midway", timeout=5)
    received = []
    with pytest.raises(grpc.RpcError) as caught:
        for item in stream:
            received.append(item)
    assert received == [b"first"]
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_unknown_method_is_unimplemented(served):
    _, channel, _, _ = served()
    with pytest.raises(grpc.RpcError) as caught:
        channel.unary_unary(f"/{SERVICE}/Nope", _identity, _identity)(b"", timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


def _health(channel, service=""):
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def test_health_follows_dependencies(served):
    _, channel, _, probe = served()
    assert _health(channel) == health_pb2.HealthCheckResponse.SERVING
    assert _health(channel, SERVICE) == health_pb2.HealthCheckResponse.SERVING
    probe.healthy = False
    deadline = time.monotonic() + 5
    while _health(channel) != health_pb2.HealthCheckResponse.NOT_SERVING:
        assert time.monotonic() < deadline, "health never went NOT_SERVING"
        time.sleep(0.05)
    assert _health(channel, SERVICE) == health_pb2.HealthCheckResponse.NOT_SERVING
    probe.healthy = True
    deadline = time.monotonic() + 5
    while _health(channel) != health_pb2.HealthCheckResponse.SERVING:
        assert time.monotonic() < deadline, "health never recovered"
        time.sleep(0.05)


def test_reflection_lists_services(served):
    _, channel, _, _ = served()
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                          timeout=5)
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert {SERVICE, "grpc.health.v1.Health"} <= names


def test_token_required_when_configured(served):
    _, channel, _, _ = served(auth_tokens="s3cret,other")
    with pytest.raises(grpc.RpcError) as caught:
        _echo(channel, b"hi")
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as caught:
        _echo(channel, b"hi", metadata=[("authorization", "Bearer wrong")])
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert _echo(channel, b"hi", metadata=[("authorization", "Bearer other")]) == b"hi"
    # health stays open without a token
    assert _health(channel) == health_pb2.HealthCheckResponse.SERVING


def test_each_call_is_judged_by_its_own_token(served):
    _, channel, _, _ = served(auth_tokens="read:r-token,admin:a-token")
    refused_before, ok_before = _handled("Echo", "PERMISSION_DENIED"), _handled("Echo", "OK")
    for _ in range(2):  # the same method, alternating tokens: no answer sticks to the method
        with pytest.raises(grpc.RpcError) as caught:
            _echo(channel, b"hi", metadata=[("authorization", "Bearer r-token")])
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "role 'read' may not call Echo; it needs admin" in caught.value.details()
        assert _echo(channel, b"hi", metadata=[("authorization", "Bearer a-token")]) == b"hi"
        with pytest.raises(grpc.RpcError) as caught:
            _echo(channel, b"hi")
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # refused calls never reach the servicer and are not counted as handled
    assert _handled("Echo", "PERMISSION_DENIED") == refused_before
    assert _handled("Echo", "OK") == ok_before + 2


def test_stop_drains_in_flight_calls_and_goes_not_serving(served):
    server, channel, behaviour, _ = served()
    result = {}

    def slow_call():
        result["response"] = _echo(channel, b"slow")

    caller = threading.Thread(target=slow_call)
    caller.start()
    time.sleep(0.3)  # the slow call is now in flight
    stopper = threading.Thread(target=server.stop, kwargs={"grace": 5})
    stopper.start()
    time.sleep(0.3)
    status = server.health.servicer.Check(health_pb2.HealthCheckRequest(service=""), None).status
    assert status == health_pb2.HealthCheckResponse.NOT_SERVING
    behaviour.release.set()
    caller.join(5)
    stopper.join(10)
    assert result["response"] == b"slow"  # the in-flight call finished, not cancelled
    with pytest.raises(grpc.RpcError):
        _echo(channel, b"after stop")


def test_worker_pool_counts_calls_in_progress():
    from loopml.runtime.grpcserver.server import WorkerPool

    pool = WorkerPool(max_workers=2)
    release = threading.Event()
    started = threading.Semaphore(0)
    finished = []

    def serve(name: str) -> None:
        started.release()
        release.wait(30)
        finished.append(name)

    calls = [pool.submit(serve, name) for name in ("a", "b", "c")]
    done = threading.Semaphore(0)
    for call in calls:
        call.add_done_callback(lambda _call: done.release())
    assert started.acquire(timeout=30) and started.acquire(timeout=30)
    assert pool.busy == 2  # two threads at most; the third call waits for one of them
    release.set()
    for _ in calls:
        assert done.acquire(timeout=30)
    assert sorted(finished) == ["a", "b", "c"]
    pool.shutdown()
