"""Builds the inference service's server (`make_server`) and runs it (`main`)."""

from __future__ import annotations

from dataclasses import dataclass

from loopml.inference.v1 import prediction_service_pb2, prediction_service_pb2_grpc
from loopml.oip.v2 import open_inference_pb2, open_inference_pb2_grpc
from loopml.runtime.errors import Unavailable
from loopml.runtime.grpcserver import ServiceRegistration, ServiceServer
from loopml.runtime.main import run_service
from loopml.services.inference.api import InferenceServicer, PredictionServiceServicer
from loopml.services.inference.core import (
    ArtifactCache,
    BatchingPolicy,
    ModelManager,
    ModelSource,
    PredictionLog,
    PredictionSink,
)
from loopml.services.inference.settings import InferenceSettings

PREDICTION_SERVICE = prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"].full_name
OIP_SERVICE = open_inference_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name


@dataclass
class InferenceDeps:
    """What the server talks to. Unset: the registry and metrics services the settings name."""

    source: ModelSource | None = None
    sink: PredictionSink | None = None


def make_server(settings: InferenceSettings, deps: InferenceDeps | None = None) -> ServiceServer:
    """An unstarted server for `settings`; its health follows the registry it loads models from."""
    from loopml.services.inference.metrics_sink import MetricsPredictionSink
    from loopml.services.inference.registry_source import RegistryModelSource

    deps = deps or InferenceDeps()
    config = settings.client_config()  # addresses, token and TLS of outgoing calls
    closers = []
    registry = RegistryModelSource(config, timeout_s=settings.call_timeout_s)
    closers.append(registry.close)
    source = deps.source or registry
    prediction_log = None
    if settings.prediction_log_enabled:
        sink = deps.sink
        if sink is None:
            metrics = MetricsPredictionSink(config)
            closers.append(metrics.close)
            sink = metrics
        prediction_log = PredictionLog(
            sink, capacity=settings.prediction_log_capacity, batch_size=settings.prediction_log_batch_size
        )
    holder: dict[str, ServiceServer] = {}

    def busy_threads() -> int:
        server = holder.get("server")
        return server.workers.busy if server is not None else 0

    manager = ModelManager(
        source,
        ArtifactCache(settings.resolved_cache_dir()),
        memory_limit_bytes=settings.model_memory_limit_bytes,
        default_batching=BatchingPolicy(
            settings.batching_enabled, settings.batch_max_size, settings.batch_max_delay_ms / 1000.0
        ),
        max_request_rows=settings.max_request_rows,
        prediction_log=prediction_log,
        follow_events=settings.follow_registry_events,
        busy_threads=busy_threads,
    )

    def registry_answers() -> None:
        if deps.source is not None:
            return  # models come from an in-process source: no registry needed
        status = registry.health()
        if status != "SERVING":
            raise Unavailable(f"registry at {settings.registry_address} is {status}")

    def ready() -> bool:
        return not holder["server"].health.failures

    server = ServiceServer(
        settings,
        [
            ServiceRegistration(
                PREDICTION_SERVICE,
                prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server,
                PredictionServiceServicer(manager),
            ),
            ServiceRegistration(
                OIP_SERVICE,
                open_inference_pb2_grpc.add_GRPCInferenceServiceServicer_to_server,
                InferenceServicer(manager, ready),
            ),
        ],
        probes={"registry": registry_answers},
        on_stop=[manager.close, *closers],
    )
    holder["server"] = server
    server.manager = manager  # for embedding code and tests that inspect the core
    return server


def main() -> None:
    run_service(InferenceSettings, make_server)
