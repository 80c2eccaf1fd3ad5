"""gRPC adapter of the registry service: translate, call the core, translate back.

RPCs not overridden here answer UNIMPLEMENTED (the generated base class does that).
"""

from __future__ import annotations

from loopml.registry.v1 import registry_service_pb2_grpc


class RegistryServiceServicer(registry_service_pb2_grpc.RegistryServiceServicer):
    pass
