"""gRPC adapters of the inference service: loopml's PredictionService and the Open Inference Protocol v2.

RPCs not overridden here answer UNIMPLEMENTED (the generated base classes do that).
"""

from __future__ import annotations

from loopml.inference.v1 import prediction_service_pb2_grpc
from loopml.oip.v2 import open_inference_pb2_grpc


class PredictionServiceServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    pass


class InferenceServicer(open_inference_pb2_grpc.GRPCInferenceServiceServicer):
    """`inference.GRPCInferenceService`, the Open Inference Protocol v2."""
