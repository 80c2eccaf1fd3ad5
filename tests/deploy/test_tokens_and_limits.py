"""Bearer tokens with roles, request limits and log hygiene, seen from a client of a real server.

A small service whose method names cover every kind of RPC (read, predict, OIP metadata, admin,
client-streaming upload) is served by the real bootstrap; one real loopml service checks the same
table applies to generated services."""

from __future__ import annotations

import logging
import threading

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from loopml.runtime.grpcserver import ServiceRegistration, ServiceServer
from loopml.runtime.grpcserver.auth import roles_allowed
from loopml.runtime.settings import ServiceSettings
from loopml.services.dataset.server import make_server as make_dataset
from loopml.services.dataset.settings import DatasetSettings
from tests.deploy._rpcs import call_read_rpc

SERVICE = "loopml.test.v1.KindsService"
TOKENS = {"read": "tok-read-1f3a", "predict": "tok-predict-77c2", "admin": "tok-admin-9e0b"}
#: method -> (kind of RPC, streaming shape)
METHODS = {
    "GetThing": ("read", "unary"),
    "WatchThings": ("read", "server_stream"),
    "Predict": ("predict", "unary"),
    "ModelMetadata": ("metadata", "unary"),
    "CreateThing": ("admin", "unary"),
    "UploadThing": ("admin", "client_stream"),
}
#: kind of RPC -> roles that may call it
ALLOWED = {
    "read": {"read", "admin"},
    "predict": {"predict", "admin"},
    "metadata": {"read", "predict", "admin"},
    "admin": {"admin"},
}


def _identity(data: bytes) -> bytes:
    return data


class Kinds:
    def __init__(self):
        self.release = threading.Event()
        self.in_flight = threading.Semaphore(0)

    def unary(self, request, context):
        if request == b"slow":
            self.in_flight.release()
            self.release.wait(10)
        return b"ok:" + request

    def server_stream(self, request, context):
        yield b"one"
        yield b"two"

    def client_stream(self, requests, context):
        return b"%d" % sum(len(r) for r in requests)


def _registration(kinds: Kinds) -> ServiceRegistration:
    factories = {
        "unary": grpc.unary_unary_rpc_method_handler,
        "server_stream": grpc.unary_stream_rpc_method_handler,
        "client_stream": grpc.stream_unary_rpc_method_handler,
    }

    def add(_servicer, server):
        handlers = {
            name: factories[shape](getattr(kinds, shape), _identity, _identity)
            for name, (_, shape) in METHODS.items()
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))

    return ServiceRegistration(SERVICE, add, kinds)


@pytest.fixture
def server(tmp_path):
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text(
        "# loopml tokens\n" + "".join(f"{role}:{TOKENS[role]}\n" for role in ("read", "predict"))
    )
    settings = ServiceSettings(
        data_dir=tmp_path, auth_tokens_file=str(tokens_file), auth_tokens=f"admin:{TOKENS['admin']}",
        max_upload_bytes=1000, max_concurrent_rpcs=3, log_level="DEBUG",
    )
    kinds = Kinds()
    srv = ServiceServer(settings, [_registration(kinds)]).start()
    srv.kinds = kinds
    yield srv
    kinds.release.set()
    srv.stop(grace=0)


def _call(channel, method: str, token: str | None, payload: bytes = b"x"):
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    path = f"/{SERVICE}/{method}"
    shape = METHODS[method][1]
    try:
        if shape == "unary":
            return channel.unary_unary(path, _identity, _identity)(payload, metadata=metadata, timeout=10)
        if shape == "server_stream":
            call = channel.unary_stream(path, _identity, _identity)
            return list(call(payload, metadata=metadata, timeout=10))
        call = channel.stream_unary(path, _identity, _identity)
        return call(iter([payload] * 3), metadata=metadata, timeout=10)
    except grpc.RpcError as error:
        return error.code()


@pytest.mark.parametrize("role", sorted(TOKENS))
@pytest.mark.parametrize("method", sorted(METHODS))
def test_each_role_against_each_kind_of_rpc(server, role, method):
    kind = METHODS[method][0]
    with grpc.insecure_channel(server.address) as channel:
        result = _call(channel, method, TOKENS[role])
    if role in ALLOWED[kind]:
        assert not isinstance(result, grpc.StatusCode), f"{role} refused {method}: {result}"
    else:
        assert result == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("method", sorted(METHODS))
def test_no_token_or_an_unknown_one_is_unauthenticated_but_health_stays_open(server, method):
    with grpc.insecure_channel(server.address) as channel:
        assert _call(channel, method, None) == grpc.StatusCode.UNAUTHENTICATED
        assert _call(channel, method, "not-a-token") == grpc.StatusCode.UNAUTHENTICATED
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_the_role_table_follows_the_method_names():
    assert roles_allowed("/loopml.dataset.v1.DatasetService/ListDatasets") == {"read", "admin"}
    assert roles_allowed("/loopml.registry.v1.RegistryService/ResolveModel") == {"read", "admin"}
    assert roles_allowed("/inference.GRPCInferenceService/ModelInfer") == {"predict", "admin"}
    assert roles_allowed("/inference.GRPCInferenceService/ServerReady") == {"read", "predict", "admin"}
    assert roles_allowed("/loopml.metrics.v1.MetricsService/RecordPredictions") == {"admin"}
    assert roles_allowed("/loopml.dataset.v1.DatasetService/DeleteDataset") == {"admin"}


def test_tokens_never_reach_the_logs(server, caplog):
    caplog.set_level(logging.DEBUG)
    with grpc.insecure_channel(server.address) as channel:
        for method in METHODS:
            for token in [*TOKENS.values(), "tok-wrong-5d1e"]:
                _call(channel, method, token)
    text = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert caplog.records, "the calls were logged"
    for token in [*TOKENS.values(), "tok-wrong-5d1e"]:
        assert token not in text


def test_an_upload_over_the_limit_is_refused(server):
    with grpc.insecure_channel(server.address) as channel:
        assert _call(channel, "UploadThing", TOKENS["admin"], b"a" * 300) == b"900"
        over = _call(channel, "UploadThing", TOKENS["admin"], b"a" * 400)
        assert over == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_calls_beyond_the_concurrency_limit_are_refused(server):
    with grpc.insecure_channel(server.address) as channel:
        results = []

        def slow_call():
            results.append(_call(channel, "GetThing", TOKENS["read"], b"slow"))

        slow = [threading.Thread(target=slow_call) for _ in range(3)]
        for thread in slow:
            thread.start()
        for _ in slow:  # all three slow calls are being served: the limit is reached
            assert server.kinds.in_flight.acquire(timeout=10)
        codes = [_call(channel, "GetThing", TOKENS["read"]) for _ in range(5)]
        server.kinds.release.set()
        for thread in slow:
            thread.join(10)
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes
    assert results == [b"ok:slow"] * 3


def test_a_real_service_applies_the_same_roles(serve, local_backend):
    settings = DatasetSettings(
        **local_backend.settings, check_lineage=False,
        auth_tokens=",".join(f"{role}:{token}" for role, token in TOKENS.items()),
    )
    server = serve("dataset", make_dataset, settings)
    with grpc.insecure_channel(server.address) as channel:
        assert call_read_rpc(channel, "dataset", TOKENS["predict"])[0] == grpc.StatusCode.PERMISSION_DENIED
        assert call_read_rpc(channel, "dataset", "")[0] == grpc.StatusCode.UNAUTHENTICATED
        code, response = call_read_rpc(channel, "dataset", TOKENS["read"])
        assert code == grpc.StatusCode.OK and list(response.datasets) == []


def test_bad_security_settings_fail_at_start_up_without_echoing_tokens(tmp_path):
    from loopml.runtime.settings import SettingsError, load_settings

    with pytest.raises(SettingsError) as error:
        load_settings(ServiceSettings, auth_tokens="superuser:tok-secret-4242")
    assert "unknown role 'superuser'" in str(error.value) and "tok-secret-4242" not in str(error.value)
    with pytest.raises(SettingsError, match="LOOPML_TLS_CERT_FILE and LOOPML_TLS_KEY_FILE"):
        load_settings(ServiceSettings, tls_cert_file=str(tmp_path / "server.pem"))
    with pytest.raises(SettingsError, match="no such file"):
        load_settings(ServiceSettings, auth_tokens_file=str(tmp_path / "missing"))
