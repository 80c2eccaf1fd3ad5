"""One read RPC per service, called over a raw channel: proof that a request travels through the
wiring (TLS, tokens) into the service's servicer."""

from __future__ import annotations

import grpc

from loopml.dataset.v1 import dataset_service_pb2, dataset_service_pb2_grpc
from loopml.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from loopml.oip.v2 import open_inference_pb2, open_inference_pb2_grpc
from loopml.registry.v1 import registry_service_pb2, registry_service_pb2_grpc
from loopml.trainer.v1 import trainer_service_pb2, trainer_service_pb2_grpc

#: service -> (stub class, method, request factory). Inference uses OIP ServerLive: it is the read
#: call every inference build answers (PredictionService.Predict needs a deployed model).
READ_RPCS = {
    "dataset": (
        dataset_service_pb2_grpc.DatasetServiceStub, "ListDatasets", dataset_service_pb2.ListDatasetsRequest
    ),
    "trainer": (
        trainer_service_pb2_grpc.TrainerServiceStub, "ListSearches", trainer_service_pb2.ListSearchesRequest
    ),
    "registry": (
        registry_service_pb2_grpc.RegistryServiceStub, "ListModels", registry_service_pb2.ListModelsRequest
    ),
    "inference": (
        open_inference_pb2_grpc.GRPCInferenceServiceStub, "ServerLive", open_inference_pb2.ServerLiveRequest
    ),
    "metrics": (
        metrics_service_pb2_grpc.MetricsServiceStub,
        "ListAlertRules",
        metrics_service_pb2.ListAlertRulesRequest,
    ),
}

#: The call got past transport and auth and the service answered it (every read RPC here is built).
ANSWERED = {grpc.StatusCode.OK}


def call_read_rpc(channel: grpc.Channel, service: str, token: str = "", timeout: float = 10.0):
    """(status code, response or None) of the service's read RPC."""
    stub_class, method, request = READ_RPCS[service]
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    try:
        response = getattr(stub_class(channel), method)(request(), timeout=timeout, metadata=metadata)
    except grpc.RpcError as error:
        return error.code(), None
    return grpc.StatusCode.OK, response
