"""The metrics service's domain core: no grpc and no generated *_pb2 imports here."""

from loopml.services.metrics.core.evaluator import AlertEvaluator
from loopml.services.metrics.core.service import CoreConfig, MetricsCore

__all__ = ["AlertEvaluator", "CoreConfig", "MetricsCore"]
