"""gRPC adapter of the dataset service: translate, call the core, translate back.

RPCs not overridden here answer UNIMPLEMENTED (the generated base class does that).
"""

from __future__ import annotations

from loopml.dataset.v1 import dataset_service_pb2_grpc


class DatasetServiceServicer(dataset_service_pb2_grpc.DatasetServiceServicer):
    pass
