"""Builds the metrics service's server (`make_server`) and runs it (`main`)."""

from __future__ import annotations

from loopml.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from loopml.runtime.grpcserver import ServiceRegistration, ServiceServer
from loopml.runtime.main import run_service
from loopml.services.metrics.api import MetricsServiceServicer
from loopml.services.metrics.settings import MetricsSettings

SERVICE_NAME = metrics_service_pb2.DESCRIPTOR.services_by_name["MetricsService"].full_name


def make_server(settings: MetricsSettings) -> ServiceServer:
    """An unstarted server for `settings`; its health follows the database and the object store."""
    database = settings.open_database()
    store = settings.open_object_store()
    servicer = MetricsServiceServicer()
    return ServiceServer(
        settings,
        [ServiceRegistration(SERVICE_NAME, metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server, servicer)],
        probes={"database": database.check, "object_store": store.check},
        on_stop=[database.dispose],
    )


def main() -> None:
    run_service(MetricsSettings, make_server)
