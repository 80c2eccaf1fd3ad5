"""gRPC adapter of the trainer service: translate, call the core, translate back.

RPCs not overridden here answer UNIMPLEMENTED (the generated base class does that).
"""

from __future__ import annotations

from loopml.trainer.v1 import trainer_service_pb2_grpc


class TrainerServiceServicer(trainer_service_pb2_grpc.TrainerServiceServicer):
    pass
