"""Builds the trainer service's server (`make_server`) and runs it (`main`)."""

from __future__ import annotations

from loopml.trainer.v1 import trainer_service_pb2, trainer_service_pb2_grpc
from loopml.runtime.grpcserver import ServiceRegistration, ServiceServer
from loopml.runtime.main import run_service
from loopml.services.trainer.api import TrainerServiceServicer
from loopml.services.trainer.settings import TrainerSettings

SERVICE_NAME = trainer_service_pb2.DESCRIPTOR.services_by_name["TrainerService"].full_name


def make_server(settings: TrainerSettings) -> ServiceServer:
    """An unstarted server for `settings`; its health follows the database and the object store."""
    database = settings.open_database()
    store = settings.open_object_store()
    servicer = TrainerServiceServicer()
    return ServiceServer(
        settings,
        [ServiceRegistration(SERVICE_NAME, trainer_service_pb2_grpc.add_TrainerServiceServicer_to_server, servicer)],
        probes={"database": database.check, "object_store": store.check},
        on_stop=[database.dispose],
    )


def main() -> None:
    run_service(TrainerSettings, make_server)
