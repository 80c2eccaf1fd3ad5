"""gRPC adapter of the metrics service: translate, call the core, translate back.

RPCs not overridden here answer UNIMPLEMENTED (the generated base class does that).
"""

from __future__ import annotations

from loopml.metrics.v1 import metrics_service_pb2_grpc


class MetricsServiceServicer(metrics_service_pb2_grpc.MetricsServiceServicer):
    pass
