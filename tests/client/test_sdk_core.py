"""The SDK's common behaviour against a real server: errors, deadlines, retries, tokens."""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from loopml.client.base import ServiceClient
from loopml.client.config import ClientConfig
from loopml.client.errors import (
    AlreadyExistsError,
    DeadlineExceededError,
    InvalidArgumentError,
    NotFoundError,
    UnauthenticatedError,
    UnavailableError,
)
from loopml.runtime import errors
from loopml.runtime.grpcserver import ServiceRegistration, ServiceServer
from loopml.runtime.settings import ServiceSettings

SERVICE = "loopml.test.v1.ThingService"


def _raw(data: bytes) -> bytes:
    return data


class ThingStub:
    """A hand-written stub: two methods over raw bytes, like a generated one."""

    def __init__(self, channel: grpc.Channel):
        self.GetThing = channel.unary_unary(f"/{SERVICE}/GetThing", _raw, _raw)
        self.CreateThing = channel.unary_unary(f"/{SERVICE}/CreateThing", _raw, _raw)


class ThingClient(ServiceClient):
    service = "dataset"  # reuse a configured address slot
    stub_class = ThingStub
    full_name = SERVICE

    @classmethod
    def _method_names(cls) -> list[str]:
        return ["GetThing", "CreateThing"]


class Things:
    """Fails with UNAVAILABLE `flaky` times, then answers; payloads pick domain errors."""

    def __init__(self):
        self.flaky = 0
        self.calls = {"GetThing": 0, "CreateThing": 0}
        self.lock = threading.Lock()

    def _handle(self, name, request, context):
        with self.lock:
            self.calls[name] += 1
            if self.flaky:
                self.flaky -= 1
                raise errors.Unavailable("database briefly away")
        if request == b"bad":
            raise errors.InvalidArgument("spec.label_column", "column 'x' does not exist")
        if request == b"missing":
            raise errors.NotFound("model", "churn")
        if request == b"dup":
            raise errors.AlreadyExists("model", "churn")
        if request == b"slow":
            time.sleep(1.0)
        return b"ok:" + request

    def registration(self):
        def add(_servicer, server):
            handlers = {
                name: grpc.unary_unary_rpc_method_handler(
                    lambda request, context, name=name: self._handle(name, request, context), _raw, _raw
                )
                for name in self.calls
            }
            server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))

        return ServiceRegistration(SERVICE, add, self)


@pytest.fixture
def things(tmp_path):
    servers = []

    def start(**settings):
        behaviour = Things()
        server = ServiceServer(ServiceSettings(data_dir=tmp_path, **settings), [behaviour.registration()]).start()
        servers.append(server)
        return behaviour, ClientConfig().with_address("dataset", server.address)

    yield start
    for server in servers:
        server.stop(grace=0)


def test_domain_errors_become_readable_exceptions(things):
    _, config = things()
    with ThingClient(config) as client:
        assert client.call("GetThing", b"x") == b"ok:x"
        with pytest.raises(InvalidArgumentError) as caught:
            client.call("CreateThing", b"bad")
        assert caught.value.field_violations[0].field == "spec.label_column"
        assert caught.value.request_id
        with pytest.raises(NotFoundError) as missing:
            client.call("GetThing", b"missing")
        assert (missing.value.resource_type, missing.value.resource_name) == ("model", "churn")
        with pytest.raises(AlreadyExistsError):
            client.call("CreateThing", b"dup")


def test_idempotent_calls_are_retried_and_others_are_not(things):
    behaviour, config = things()
    with ThingClient(config) as client:
        behaviour.flaky = 2
        assert client.call("GetThing", b"x") == b"ok:x"
        assert behaviour.calls["GetThing"] == 3  # two UNAVAILABLE answers were retried

        behaviour.flaky = 1
        with pytest.raises(UnavailableError):
            client.call("CreateThing", b"y")
        assert behaviour.calls["CreateThing"] == 1  # a create is never sent twice


def test_every_call_has_a_deadline(things):
    _, config = things()
    short = ClientConfig(addresses=config.addresses, timeout_s=0.2)
    with ThingClient(short) as client:
        with pytest.raises(DeadlineExceededError):
            client.call("GetThing", b"slow")
        assert client.call("GetThing", b"slow", timeout=5) == b"ok:slow"


def test_token_is_sent_when_configured(things):
    _, config = things(auth_tokens="t0ken")
    with ThingClient(config) as anonymous:
        with pytest.raises(UnauthenticatedError):
            anonymous.call("GetThing", b"x")
    with ThingClient(ClientConfig(addresses=config.addresses, token="t0ken")) as client:
        assert client.call("GetThing", b"x") == b"ok:x"


def test_unreachable_service_reports_unavailable():
    config = ClientConfig().with_address("dataset", "127.0.0.1:1")
    with ThingClient(ClientConfig(addresses=config.addresses, timeout_s=2)) as client:
        assert client.health(timeout=0.5) == "UNREACHABLE"
        with pytest.raises(UnavailableError):
            client.call("CreateThing", b"x")


def test_config_reads_the_same_variable_names_as_the_servers():
    config = ClientConfig.from_env(
        {"LOOPML_REGISTRY_ADDRESS": "registry:7000", "LOOPML_TOKEN": "abc", "LOOPML_TIMEOUT_S": "3"}
    )
    assert config.addresses["registry"] == "registry:7000"
    assert config.addresses["dataset"] == "127.0.0.1:50051"
    assert (config.token, config.timeout_s) == ("abc", 3.0)
