"""Several metrics replicas on one database: only the lease holder evaluates alert rules (and so
fires webhooks and starts retrainings); every replica answers RPCs; when the leader stops, another
replica takes over within the lease time."""

from __future__ import annotations

import time

import pytest

from loopml.client.config import ClientConfig
from loopml.client.metrics import MetricsClient
from loopml.common.v1 import metric_pb2, refs_pb2
from loopml.metrics.v1 import alerts_pb2, metrics_pb2
from loopml.runtime.db import migrate
from loopml.services.metrics.core.model import VersionInfo
from loopml.services.metrics.lease import LeaderLease
from loopml.services.metrics.server import MIGRATIONS, MetricsDeps, make_server
from tests.fixtures.stack import Backend
from tests.metrics.helpers import settings

LEASE_S = 1.5


class Evaluations:
    """A model catalog per replica that notes which replica resolved the rule's alias: only the
    alert evaluator does that in this test, so it tells which replicas evaluate."""

    def __init__(self):
        self.by: list[str] = []

    def catalog(self, replica: str):
        evaluations = self

        class Catalog:
            def version(self, model_name, version):
                return VersionInfo(model_name, version or 1, "binary", ("x",), ("no", "yes"), "label")

            def resolve_alias(self, model_name, alias):
                evaluations.by.append(replica)
                return VersionInfo(model_name, 1, "binary", ("x",), ("no", "yes"), "label")

            def set_alias(self, model_name, alias, version, reason):
                raise AssertionError("no alias moves in this test")

        return Catalog()

    def since(self, mark: int) -> set[str]:
        return set(self.by[mark:])


def _wait_for(predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not reached")


@pytest.fixture
def pg_backend(fresh_pg_url, tmp_path) -> Backend:
    return Backend("pg", {"data_dir": tmp_path / "data", "database_url": fresh_pg_url})


def test_one_replica_evaluates_and_another_takes_over(pg_backend, serve):
    evaluations = Evaluations()
    replicas, clients = {}, {}
    for name in ("a", "b"):
        replicas[name] = serve(
            f"metrics-{name}",
            lambda s, name=name: make_server(s, MetricsDeps(catalog=evaluations.catalog(name))),
            settings(pg_backend, alert_evaluation_interval_s=0.2, leader_lease_s=LEASE_S),
        )
        clients[name] = MetricsClient(ClientConfig(addresses={"metrics": replicas[name].address}))
    try:
        rule = alerts_pb2.AlertRule(
            name="accuracy",
            performance=alerts_pb2.PerformanceTarget(
                model=refs_pb2.ModelRef(name="churn", alias="production"),
                metric=metric_pb2.METRIC_NAME_ACCURACY,
            ),
            operator=metrics_pb2.COMPARISON_OPERATOR_LESS,
            threshold=0.8,
        )
        rule.window.FromSeconds(600)
        created = clients["b"].create_alert_rule(rule)  # RPCs answer on every replica
        assert [r.rule_id for r in clients["a"].list_alert_rules()] == [created.rule_id]
        _wait_for(lambda: len(evaluations.by) >= 8, 10)  # several evaluator ticks
        (leader,) = evaluations.since(0)
        follower = "b" if leader == "a" else "a"

        replicas[leader].stop(0)
        stopped = time.monotonic()
        mark = len(evaluations.by)
        _wait_for(lambda: follower in evaluations.since(mark), LEASE_S + 5)
        assert time.monotonic() - stopped < LEASE_S + 5
        assert evaluations.since(mark) == {follower}
    finally:
        for client in clients.values():
            client.close()


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"])
def test_lease_of_a_silent_leader_is_taken_after_it_expires(backend_name, fresh_pg_url, tmp_path):
    extra = {"database_url": fresh_pg_url} if backend_name == "postgresql" else {}
    database = settings(Backend(backend_name, {"data_dir": tmp_path, **extra})).open_database()
    migrate(database, MIGRATIONS, "alembic_version_metrics")
    a, b = LeaderLease(database, "a", 1.0), LeaderLease(database, "b", 1.0)
    try:
        assert a.renew() and a.held()
        assert not b.renew() and not b.held()
        assert a.renew()  # the holder extends its lease
        # a stops renewing (a crashed replica): b gets the lease once it has expired, not before
        time.sleep(1.1)
        assert not a.held()
        assert b.renew() and b.held()
        assert not a.renew()
        b.release()  # a clean shutdown hands over at once
        assert not b.held() and a.renew()
    finally:
        database.dispose()
