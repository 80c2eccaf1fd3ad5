"""Builds the dataset service's server (`make_server`) and runs it (`main`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from loopml.dataset.v1 import dataset_service_pb2, dataset_service_pb2_grpc
from loopml.runtime.db import migrate
from loopml.runtime.grpcserver import ServiceRegistration, ServiceServer
from loopml.runtime.main import run_service
from loopml.services.dataset.api import DatasetServiceServicer
from loopml.services.dataset.core import DatasetCore, Limits, LineageChecker, NoLineage
from loopml.services.dataset.repository import Repository
from loopml.services.dataset.settings import DatasetSettings

SERVICE_NAME = dataset_service_pb2.DESCRIPTOR.services_by_name["DatasetService"].full_name
MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass
class Deps:
    """What `make_server` would otherwise build from settings (tests and embedders pass their own)."""

    lineage: LineageChecker | None = None


def make_server(settings: DatasetSettings, deps: Deps | None = None) -> ServiceServer:
    """An unstarted server for `settings`; its health follows the database and the object store."""
    deps = deps or Deps()
    database = settings.open_database()
    if settings.migrate_on_start:
        migrate(database, MIGRATIONS, "alembic_version_dataset")
    store = settings.open_object_store()
    lineage = deps.lineage
    on_stop = [database.dispose]
    if lineage is None and settings.check_lineage:
        from loopml.services.dataset.registry_lineage import RegistryLineage

        lineage = RegistryLineage(settings.client_config())
        on_stop.append(lineage.close)
    core = DatasetCore(
        Repository(database),
        store,
        Limits(
            max_upload_bytes=settings.max_upload_bytes,
            spool_dir=settings.spool_dir or None,
            read_block_bytes=settings.read_block_bytes,
        ),
        lineage or NoLineage(),
    )
    servicer = DatasetServiceServicer(core)
    server = ServiceServer(
        settings,
        [
            ServiceRegistration(
                SERVICE_NAME, dataset_service_pb2_grpc.add_DatasetServiceServicer_to_server, servicer
            )
        ],
        probes={"database": database.check, "object_store": store.check},
        on_stop=on_stop,
    )
    server.core = core  # for in-process inspection (tests, benchmarks)
    return server


def main() -> None:
    run_service(DatasetSettings, make_server)
