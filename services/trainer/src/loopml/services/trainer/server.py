"""Builds the trainer service's server (`make_server`) and runs it (`main`); `worker_main` runs
search slots without the gRPC API (more trainer workers sharing the database)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from loopml.runtime.db import migrate
from loopml.runtime.grpcserver import ServiceRegistration, ServiceServer
from loopml.runtime.main import run_service
from loopml.services.trainer.api import TrainerServiceServicer
from loopml.services.trainer.core.execution import Engine, EngineConfig
from loopml.services.trainer.core.runner import SearchRunner
from loopml.services.trainer.core.service import Trainer
from loopml.services.trainer.core.state import SearchState
from loopml.services.trainer.dataset_source import GrpcDataSource
from loopml.services.trainer.registry_sink import GrpcRegistry
from loopml.services.trainer.settings import TrainerSettings
from loopml.trainer.v1 import trainer_service_pb2, trainer_service_pb2_grpc

SERVICE_NAME = trainer_service_pb2.DESCRIPTOR.services_by_name["TrainerService"].full_name
MIGRATIONS = Path(__file__).parent / "migrations"


def build_engine(settings: TrainerSettings, database, store, *, data=None, registry=None) -> Engine:
    config = settings.client_config()  # addresses, token, TLS and deadline of outgoing calls
    return Engine(
        state=SearchState(
            database,
            heartbeat_interval_s=settings.heartbeat_interval_s,
            grace_period_s=settings.heartbeat_grace_s,
        ),
        store=store,
        data=data or GrpcDataSource(config),
        registry=registry or GrpcRegistry(config),
        config=EngineConfig(
            worker_id=settings.worker_id or f"{socket.gethostname()}-{os.getpid()}",
            default_trial_time_limit_s=settings.default_trial_time_limit_s,
            default_trial_memory_limit_bytes=settings.default_trial_memory_limit_bytes,
            lease_s=settings.lease_s,
        ),
    )


def make_server(settings: TrainerSettings, deps: dict | None = None) -> ServiceServer:
    """An unstarted server for `settings`; its health follows the database and the object store.

    `deps` may replace the data source (`data`) or the registry (`registry`)."""
    deps = deps or {}
    database = settings.open_database()
    store = settings.open_object_store()
    if settings.migrate_on_start:
        migrate(database, MIGRATIONS, "alembic_version_trainer")
    engine = build_engine(settings, database, store, data=deps.get("data"), registry=deps.get("registry"))
    trainer = Trainer(engine, default_parallel_trials=settings.default_parallel_trials)
    runner = SearchRunner(engine, max_slots=settings.worker_slots)
    servicer = TrainerServiceServicer(trainer)
    return TrainerServer(
        settings,
        [
            ServiceRegistration(
                SERVICE_NAME, trainer_service_pb2_grpc.add_TrainerServiceServicer_to_server, servicer
            )
        ],
        probes={"database": database.check, "object_store": store.check},
        on_stop=[runner.stop, database.dispose],
        runner=runner if settings.run_searches else None,
    )


class TrainerServer(ServiceServer):
    """The gRPC server plus, when this process runs searches, the search runner (started with it)."""

    def __init__(self, *args, runner: SearchRunner | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.runner = runner

    def start(self) -> TrainerServer:
        super().start()
        if self.runner is not None:
            self.runner.start()
        return self


def main() -> None:
    run_service(TrainerSettings, make_server)


def worker_main() -> None:
    """Run search slots only (no gRPC API), until SIGTERM/SIGINT."""
    import signal
    import threading

    from loopml.runtime.settings import load_settings

    settings = load_settings(TrainerSettings)
    database = settings.open_database()
    if settings.migrate_on_start:
        migrate(database, MIGRATIONS, "alembic_version_trainer")
    engine = build_engine(settings, database, settings.open_object_store())
    runner = SearchRunner(engine, max_slots=settings.worker_slots)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    runner.start()
    done.wait()
    runner.stop()
    database.dispose()
