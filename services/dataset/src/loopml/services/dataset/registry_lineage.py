"""`LineageChecker` over the registry's gRPC API: which registered model versions were trained on a
dataset version (ListModelVersions filtered by `lineage_dataset_id` / `lineage_dataset_version`).

A registry that does not answer (UNAVAILABLE, deadline) makes the check fail with `Unavailable`:
a delete is never allowed on a guess. A registry that does not implement the RPC (UNIMPLEMENTED)
holds no models, so nothing is in use.
"""

from __future__ import annotations

import grpc

from loopml.client.channel import open_channel
from loopml.client.config import ClientConfig
from loopml.registry.v1 import model_pb2, registry_service_pb2, registry_service_pb2_grpc
from loopml.runtime.errors import Unavailable

#: Versions that count as registered: a FAILED upload is not a model anyone serves.
_LIVE = [model_pb2.MODEL_VERSION_STATUS_PENDING, model_pb2.MODEL_VERSION_STATUS_READY]


class RegistryLineage:
    def __init__(self, config: ClientConfig):
        self.address, self.timeout_s = config.addresses["registry"], config.timeout_s
        self._channel = open_channel(
            self.address,
            token=config.token,
            max_message_bytes=config.max_message_bytes,
            credentials=config.credentials(),
            tls_server_name=config.tls_server_name,
        )
        self._stub = registry_service_pb2_grpc.RegistryServiceStub(self._channel)

    def models_using(self, dataset_id: str, version: int) -> list[str]:
        try:
            return list(self._scan(dataset_id, version))
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.UNIMPLEMENTED:
                return []
            raise Unavailable(
                f"cannot check which models use the dataset: registry at {self.address} answered "
                f"{error.code().name}; retry, or delete with force"
            ) from None

    def _scan(self, dataset_id: str, version: int):
        token = ""
        while True:
            page = self._stub.ListModelVersions(
                registry_service_pb2.ListModelVersionsRequest(
                    lineage_dataset_id=dataset_id,
                    lineage_dataset_version=version,
                    statuses=_LIVE,
                    page_size=1000,
                    page_token=token,
                ),
                timeout=self.timeout_s,
            )
            for mv in page.model_versions:
                yield f"{mv.model_name}@{mv.version}"
            token = page.next_page_token
            if not token:
                return

    def close(self) -> None:
        self._channel.close()
