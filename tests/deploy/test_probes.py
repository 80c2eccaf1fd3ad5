"""What the Kubernetes probes ask: readiness follows the dependencies, liveness only the process."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from loopml.runtime.grpcserver import ServiceServer
from loopml.runtime.healthcheck import check
from loopml.runtime.settings import ServiceSettings


def _status(channel, service: str) -> str:
    request = health_pb2.HealthCheckRequest(service=service)
    response = health_pb2_grpc.HealthStub(channel).Check(request, timeout=5)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


def test_liveness_stays_serving_while_a_dependency_is_down(tmp_path):
    def database_down():
        raise ConnectionError("database did not answer")

    settings = ServiceSettings(data_dir=tmp_path, auth_tokens="admin:tok-probe-1")
    server = ServiceServer(settings, [], probes={"database": database_down}).start()
    try:
        with grpc.insecure_channel(server.address) as channel:
            assert _status(channel, "") == "NOT_SERVING"  # readiness: out of the Service
            assert _status(channel, "liveness") == "SERVING"  # liveness: no restart for it
        assert check(server.address) == "NOT_SERVING"  # the container health check follows readiness
        assert check(server.address, service="liveness") == "SERVING"
    finally:
        server.stop(grace=0)
    assert check(server.address, timeout_s=1) == "UNREACHABLE"
