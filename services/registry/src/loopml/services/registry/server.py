"""Builds the registry service's server (`make_server`) and runs it (`main`)."""

from __future__ import annotations

from loopml.registry.v1 import registry_service_pb2, registry_service_pb2_grpc
from loopml.runtime.grpcserver import ServiceRegistration, ServiceServer
from loopml.runtime.main import run_service
from loopml.services.registry.api import RegistryServiceServicer
from loopml.services.registry.settings import RegistrySettings

SERVICE_NAME = registry_service_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name


def make_server(settings: RegistrySettings) -> ServiceServer:
    """An unstarted server for `settings`; its health follows the database and the object store."""
    database = settings.open_database()
    store = settings.open_object_store()
    servicer = RegistryServiceServicer()
    return ServiceServer(
        settings,
        [ServiceRegistration(SERVICE_NAME, registry_service_pb2_grpc.add_RegistryServiceServicer_to_server, servicer)],
        probes={"database": database.check, "object_store": store.check},
        on_stop=[database.dispose],
    )


def main() -> None:
    run_service(RegistrySettings, make_server)
