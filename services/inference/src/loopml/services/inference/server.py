"""Builds the inference service's server (`make_server`) and runs it (`main`)."""

from __future__ import annotations

from loopml.client.base import ServiceClient
from loopml.client.config import ClientConfig
from loopml.inference.v1 import prediction_service_pb2, prediction_service_pb2_grpc
from loopml.oip.v2 import open_inference_pb2, open_inference_pb2_grpc
from loopml.runtime.errors import Unavailable
from loopml.runtime.grpcserver import ServiceRegistration, ServiceServer
from loopml.runtime.main import run_service
from loopml.services.inference.api import InferenceServicer, PredictionServiceServicer
from loopml.services.inference.settings import InferenceSettings

PREDICTION_SERVICE = prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"].full_name
OIP_SERVICE = open_inference_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name


class _RegistryHealth(ServiceClient):
    service = "registry"


def make_server(settings: InferenceSettings) -> ServiceServer:
    """An unstarted server for `settings`; its health follows the registry it loads models from."""
    registry = _RegistryHealth(
        ClientConfig(addresses={"registry": settings.registry_address}, token=settings.client_token)
    )

    def registry_answers() -> None:
        status = registry.health(timeout=1.0)
        if status != "SERVING":
            raise Unavailable(f"registry at {settings.registry_address} is {status}")

    return ServiceServer(
        settings,
        [
            ServiceRegistration(
                PREDICTION_SERVICE,
                prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server,
                PredictionServiceServicer(),
            ),
            ServiceRegistration(
                OIP_SERVICE, open_inference_pb2_grpc.add_GRPCInferenceServiceServicer_to_server, InferenceServicer()
            ),
        ],
        probes={"registry": registry_answers},
        on_stop=[registry.close],
    )


def main() -> None:
    run_service(InferenceSettings, make_server)
