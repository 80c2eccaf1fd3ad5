"""Builds the metrics service's server (`make_server`) and runs it (`main`)."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from loopml.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from loopml.runtime.db import migrate
from loopml.runtime.errors import LoopmlError
from loopml.runtime.grpcserver import ServiceRegistration, ServiceServer
from loopml.runtime.main import run_service
from loopml.services.metrics import convert, gauges
from loopml.services.metrics.api import MetricsServiceServicer
from loopml.services.metrics.core import AlertEvaluator, CoreConfig, MetricsCore
from loopml.services.metrics.core.drift import Thresholds
from loopml.services.metrics.jobs import PeriodicJob
from loopml.services.metrics.lease import LeaderLease
from loopml.services.metrics.repository import Repository
from loopml.services.metrics.retrainer import GrpcRetrainer
from loopml.services.metrics.rules_repository import RulesRepository
from loopml.services.metrics.settings import MetricsSettings

SERVICE_NAME = metrics_service_pb2.DESCRIPTOR.services_by_name["MetricsService"].full_name
MIGRATIONS = Path(__file__).parent / "migrations"
DAY = 86400.0
log = logging.getLogger("loopml.metrics")


@dataclass
class MetricsDeps:
    """Collaborators; None fields get the gRPC implementations from the settings' addresses."""

    catalog: object | None = None
    references: object | None = None
    retrainer: object | None = None
    notify: object | None = None


class MetricsServer(ServiceServer):
    """The runtime's server plus the metrics service's background jobs; `lease` (None when no
    leader-only job is on) decides whether this replica runs the leader-only ones."""

    def __init__(self, *args, jobs: list[PeriodicJob], lease: LeaderLease | None, **kwargs):
        super().__init__(*args, **kwargs)
        self.jobs = jobs
        self.lease = lease

    def start(self) -> MetricsServer:
        super().start()
        if self.lease is not None:
            self.lease.renew()  # a lone replica leads from its first tick
        for job in self.jobs:
            job.start()
        return self

    def stop(self, grace: float | None = None) -> None:
        for job in self.jobs:
            job.stop()
        if self.lease is not None:
            self.lease.release()
        super().stop(grace)


def make_server(settings: MetricsSettings, deps: MetricsDeps | None = None) -> MetricsServer:
    """An unstarted server for `settings`; its health follows the database and the object store."""
    from loopml.services.metrics import remote

    deps = deps or MetricsDeps()
    database = settings.open_database()
    store = settings.open_object_store()
    if settings.migrate_on_start:  # containers run `python -m loopml.runtime.migrate metrics` instead
        migrate(database, MIGRATIONS, "alembic_version_metrics")
    clients = settings.client_config()  # addresses, token, TLS and deadline of outgoing calls
    catalog = deps.catalog or remote.GrpcModelCatalog(clients)
    references = deps.references or remote.GrpcReferenceSource(clients, catalog)
    config = CoreConfig(
        feedback_window_s=settings.feedback_window_s,
        max_batch_size=settings.max_batch_size,
        raw_retention_s=settings.raw_retention_days * DAY,
        minute_retention_s=settings.minute_retention_days * DAY,
        hour_retention_s=settings.hour_retention_days * DAY,
        prediction_retention_s=settings.prediction_retention_days * DAY,
    )
    core = MetricsCore(
        Repository(database, convert.RecordCodec()), RulesRepository(database), config, catalog, references
    )
    retrainer = deps.retrainer or GrpcRetrainer(
        clients, catalog, core.feedback_training_rows, settings.retrain_timeout_s
    )
    background = ThreadPoolExecutor(max_workers=2, thread_name_prefix="metrics-retrain")
    evaluator = AlertEvaluator(
        core,
        retrainer,
        deps.notify or remote.post_webhook,
        background,
        settings.alert_evaluation_interval_s or 30.0,
        gauges.publish_alert_value,
    )
    servicer = MetricsServiceServicer(core, evaluator, gauges.publish_performance, gauges.publish_drift)
    # Side effects (retention deletes, webhooks, retrainings) happen on the leader only; the
    # gauges are computed by every replica, as each one's /metrics is scraped on its own.
    lease = None
    jobs = [PeriodicJob("gauges", settings.gauge_refresh_interval_s, lambda: refresh_gauges(core))]
    if settings.maintenance_interval_s > 0 or settings.alert_evaluation_interval_s > 0:
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        lease = LeaderLease(database, owner, settings.leader_lease_s)
        jobs += [
            PeriodicJob("leader-lease", settings.leader_lease_s / 3, lease.renew),
            PeriodicJob("maintenance", settings.maintenance_interval_s, core.run_maintenance, lease.held),
            PeriodicJob(
                "alerts", _tick(settings.alert_evaluation_interval_s), evaluator.evaluate_due, lease.held
            ),
        ]
    return MetricsServer(
        settings,
        [
            ServiceRegistration(
                SERVICE_NAME, metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server, servicer
            )
        ],
        probes={"database": database.check, "object_store": store.check},
        on_stop=[lambda: background.shutdown(wait=False, cancel_futures=True), database.dispose],
        jobs=jobs,
        lease=lease,
    )


def _tick(interval_s: float) -> float:
    """The evaluator wakes up often enough for rules with a short evaluation_interval."""
    return min(interval_s, 1.0) if interval_s > 0 else 0.0


def refresh_gauges(core: MetricsCore) -> None:
    """Recompute the quality and drift gauges of every model version that answered in a day."""
    now = time.time()
    for model, version in core.repo.recent_models(now - DAY):
        try:
            gauges.publish_performance(core.model_performance(model, version, now - DAY, now, []))
        except LoopmlError as exc:
            log.debug("performance gauge of %s v%s: %s", model, version, exc)
        try:
            gauges.publish_drift(core.drift_report(model, version, now - DAY, now, [], Thresholds()))
        except LoopmlError as exc:
            log.debug("drift gauge of %s v%s: %s", model, version, exc)


def main() -> None:
    run_service(MetricsSettings, make_server)
