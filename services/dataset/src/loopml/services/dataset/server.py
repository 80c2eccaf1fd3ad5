"""Builds the dataset service's server (`make_server`) and runs it (`main`)."""

from __future__ import annotations

from loopml.dataset.v1 import dataset_service_pb2, dataset_service_pb2_grpc
from loopml.runtime.grpcserver import ServiceRegistration, ServiceServer
from loopml.runtime.main import run_service
from loopml.services.dataset.api import DatasetServiceServicer
from loopml.services.dataset.settings import DatasetSettings

SERVICE_NAME = dataset_service_pb2.DESCRIPTOR.services_by_name["DatasetService"].full_name


def make_server(settings: DatasetSettings) -> ServiceServer:
    """An unstarted server for `settings`; its health follows the database and the object store."""
    database = settings.open_database()
    store = settings.open_object_store()
    servicer = DatasetServiceServicer()
    return ServiceServer(
        settings,
        [ServiceRegistration(SERVICE_NAME, dataset_service_pb2_grpc.add_DatasetServiceServicer_to_server, servicer)],
        probes={"database": database.check, "object_store": store.check},
        on_stop=[database.dispose],
    )


def main() -> None:
    run_service(DatasetSettings, make_server)
