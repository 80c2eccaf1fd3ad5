"""Aliases: set, move, compare-and-set, history, rollback, resolve, and their bad input."""

from __future__ import annotations

import pytest

from loopml.client.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    LoopmlClientError,
    NotFoundError,
)
from loopml.registry.v1 import registry_service_pb2 as pb
from loopml.services.registry.core import ALIAS_PATTERN
from tests.registry.conftest import sha


@pytest.fixture
def three_versions(registry):
    for i in range(3):
        registry.client.upload_version("m", f"v{i + 1}".encode(), create_model_if_missing=True)
    return registry


def test_alias_moves_are_recorded_and_rollback_is_one_call(three_versions):
    client = three_versions.client
    first = client.set_alias("m", "production", 1, reason="launch")
    assert (first.previous_version, first.version, first.changed_by, first.reason) == (
        0,
        1,
        "tester",
        "launch",
    )
    client.set_alias("m", "production", 3)
    assert client.resolve("m").version == 3 and client.resolve("m", alias="production").version == 3
    assert dict(client.get_model("m").aliases) == {"production": 3}
    assert list(client.get_version("m", 3).aliases) == ["production"]

    back = client.rollback("m", "production")
    assert (back.previous_version, back.version) == (3, 1)
    assert client.resolve("m").version == 1
    history = client.alias_history("m", "production")
    assert [(c.previous_version, c.version) for c in history] == [(3, 1), (1, 3), (0, 1)]
    assert all(c.change_time.seconds > 0 for c in history)


def test_compare_and_set_refuses_a_stale_expectation(three_versions):
    client = three_versions.client
    client.set_alias("m", "staging", 1, expected_version=0)
    with pytest.raises(LoopmlClientError) as error:
        client.set_alias("m", "staging", 2, expected_version=3)
    assert error.value.code == "ABORTED"
    with pytest.raises(LoopmlClientError):
        client.set_alias("m", "staging", 2, expected_version=0)  # 0: only if the alias does not exist
    client.set_alias("m", "staging", 2, expected_version=1)
    assert client.resolve("m", alias="staging").version == 2


def test_alias_to_a_failed_version_is_failed_precondition(registry):
    registry.client.create_model("m")
    header = pb.CreateModelVersionHeader(model_name="m", sha256=sha(b"claimed"))
    with pytest.raises(InvalidArgumentError):
        registry.client._call(
            "CreateModelVersion",
            iter([pb.CreateModelVersionRequest(header=header), pb.CreateModelVersionRequest(chunk=b"sent")]),
        )
    with pytest.raises(FailedPreconditionError) as error:
        registry.client.set_alias("m", "production", 1)
    assert "FAILED" in error.value.message
    with pytest.raises(FailedPreconditionError):
        registry.client.resolve("m", version=1)
    assert dict(registry.client.get_model("m").aliases) == {}


def test_alias_to_a_deleted_version_is_failed_precondition(three_versions):
    client = three_versions.client
    client.delete_version("m", 2)
    with pytest.raises(FailedPreconditionError) as error:
        client.set_alias("m", "production", 2)
    assert "deleted" in error.value.message
    assert client.alias_history("m") == []


def test_unknown_alias_is_not_found_naming_it(three_versions):
    client = three_versions.client
    for call in (
        lambda: client.resolve("m", alias="canary"),
        lambda: client.delete_alias("m", "canary"),
        lambda: client.resolve("m"),
        lambda: client.download("m", alias="canary"),
    ):
        with pytest.raises(NotFoundError) as error:
            call()
        assert error.value.resource_type == "alias" and error.value.resource_name.startswith("m@")
    with pytest.raises(NotFoundError) as error:
        client.set_alias("m", "production", 9)
    assert error.value.resource_name == "m/versions/9"


def test_invalid_alias_names_give_the_pattern(three_versions):
    for alias in ["latest", "Production", "1st", "has space", "a" * 65]:
        with pytest.raises(InvalidArgumentError) as error:
            three_versions.client.set_alias("m", alias, 1)
        violation = error.value.field_violations[0]
        assert violation.field == "alias", alias
        assert alias == "latest" or ALIAS_PATTERN in violation.description
    assert three_versions.client.alias_history("m") == []


def test_delete_alias_is_recorded(three_versions):
    client = three_versions.client
    client.set_alias("m", "champion", 2)
    change = client.delete_alias("m", "champion", reason="retired")
    assert (change.previous_version, change.version, change.reason) == (2, 0, "retired")
    with pytest.raises(NotFoundError):
        client.resolve("m", alias="champion")
    client.delete_version("m", 2)  # no alias points at it any more


def test_resolve_latest_is_the_highest_ready_version(three_versions):
    client = three_versions.client
    header = pb.CreateModelVersionHeader(model_name="m", sha256=sha(b"claimed"))
    with pytest.raises(InvalidArgumentError):
        client._call(
            "CreateModelVersion",
            iter([pb.CreateModelVersionRequest(header=header), pb.CreateModelVersionRequest(chunk=b"sent")]),
        )
    assert client.resolve("m", latest=True).version == 3
    assert client.resolve("m", version=2).artifact.sha256 == sha(b"v2")
    assert client.resolve("m", alias="latest").version == 3  # "latest" as an alias means the same


def test_resolve_a_model_without_ready_versions_is_not_found(registry):
    registry.client.create_model("empty")
    with pytest.raises(NotFoundError) as error:
        registry.client.resolve("empty", latest=True)
    assert error.value.resource_name == "empty@latest"


def test_an_alias_moved_through_one_replica_resolves_on_another(registry, backend, serve):
    import time

    from loopml.client.registry import RegistryClient
    from loopml.services.registry.server import make_server
    from loopml.services.registry.settings import RegistrySettings

    replica = serve(
        "registry-2", make_server, RegistrySettings(**backend.settings, listen_address="127.0.0.1:0")
    )
    other = RegistryClient(registry.client.config.with_address("registry", replica.address))
    for i in range(2):
        registry.client.upload_version("m", f"v{i + 1}".encode(), create_model_if_missing=True)
    registry.client.set_alias("m", "production", 1)
    deadline = time.monotonic() + 30
    while other.resolve("m").version != 1:  # the replica learns of the move (it may cache answers)
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert other.resolve("m").version == 1  # now cached on the replica
    registry.client.set_alias("m", "production", 2)
    assert registry.client.resolve("m").version == 2  # the replica that made the change: at once
    while other.resolve("m").version != 2:  # the other one: within about one poll interval
        assert time.monotonic() < deadline, "the second replica kept answering the old version"
        time.sleep(0.05)
    other.close()
