"""`ModelSource` over the registry's gRPC API (ResolveModel, DownloadModelArtifact, WatchModelEvents)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator

from loopml.client.base import ServiceClient
from loopml.client.config import ClientConfig
from loopml.client.errors import LoopmlClientError
from loopml.registry.v1 import model_pb2, registry_service_pb2, registry_service_pb2_grpc
from loopml.runtime import errors
from loopml.services.inference import convert
from loopml.services.inference.core import AliasMoved, ModelRef, ResolvedVersion, VersionReady

_FLAVORS = {
    model_pb2.MODEL_FLAVOR_SKLEARN_PIPELINE: "sklearn-pipeline",
    model_pb2.MODEL_FLAVOR_XGBOOST: "xgboost",
    model_pb2.MODEL_FLAVOR_PYTORCH: "pytorch",
    model_pb2.MODEL_FLAVOR_ENSEMBLE: "ensemble",
    model_pb2.MODEL_FLAVOR_ONNX: "onnx",
}


class _RegistryClient(ServiceClient):
    service = "registry"
    stub_class = registry_service_pb2_grpc.RegistryServiceStub
    full_name = registry_service_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name


def _domain_error(error: LoopmlClientError) -> errors.LoopmlError:
    """The registry's answer as a domain error of this service (NOT_FOUND stays NOT_FOUND, ...)."""
    if error.code == "NOT_FOUND":
        return errors.NotFound(
            error.resource_type or "model", error.resource_name or error.message, error.message
        )
    if error.code == "FAILED_PRECONDITION":
        return errors.FailedPrecondition(error.message)
    if error.code == "INVALID_ARGUMENT":
        field = error.field_violations[0].field if error.field_violations else "model"
        return errors.InvalidArgument(f"model.{field.removeprefix('model.')}", error.message)
    if error.code == "DATA_LOSS":
        return errors.DataLoss(error.message)
    return errors.Unavailable(f"registry: {error.code}: {error.message}")


class RegistryModelSource:
    def __init__(self, config: ClientConfig, *, timeout_s: float = 30.0):
        self._client = _RegistryClient(config)
        self._timeout_s = timeout_s

    def resolve(self, ref: ModelRef) -> ResolvedVersion:
        request = registry_service_pb2.ResolveModelRequest(model=convert.model_ref_to_proto(ref))
        try:
            version = self._client.call("ResolveModel", request, timeout=self._timeout_s).model_version
        except LoopmlClientError as error:
            raise _domain_error(error) from None
        return ResolvedVersion(
            version.model_name,
            version.version,
            version.artifact.sha256,
            version.artifact.size_bytes,
            _FLAVORS.get(version.flavor, ""),
        )

    def fetch(self, resolved: ResolvedVersion) -> bytes:
        request = registry_service_pb2.DownloadModelArtifactRequest(
            model=convert.model_ref_to_proto(ModelRef(resolved.name, version=resolved.version))
        )
        chunks, header = [], None
        try:
            for message in self._client.stream("DownloadModelArtifact", request, timeout=self._timeout_s):
                if message.WhichOneof("payload") == "header":
                    header = message.header
                else:
                    chunks.append(message.chunk)
        except LoopmlClientError as error:
            raise _domain_error(error) from None
        if header is not None and header.sha256 and header.sha256.lower() != resolved.sha256.lower():
            raise errors.DataLoss(
                f"registry sent sha256 {header.sha256} for {resolved.name} v{resolved.version}, "
                f"resolved {resolved.sha256}"
            )
        data = b"".join(chunks)
        digest = hashlib.sha256(data).hexdigest()
        if digest != resolved.sha256.lower():
            raise errors.DataLoss(f"downloaded artifact has sha256 {digest}, expected {resolved.sha256}")
        return data

    def watch(self, stop: threading.Event) -> Iterator[AliasMoved | VersionReady]:
        request = registry_service_pb2.WatchModelEventsRequest(
            types=[
                model_pb2.MODEL_EVENT_TYPE_ALIAS_SET,
                model_pb2.MODEL_EVENT_TYPE_VERSION_STATUS_CHANGED,
                model_pb2.MODEL_EVENT_TYPE_VERSION_CREATED,
            ]
        )
        call = self._client.stub.WatchModelEvents(request)  # no deadline: a watch stays open
        stopper = threading.Thread(target=lambda: (stop.wait(), call.cancel()), daemon=True)
        stopper.start()
        try:
            for message in call:
                event = message.event
                if event.type == model_pb2.MODEL_EVENT_TYPE_ALIAS_SET:
                    change = event.alias_change
                    yield AliasMoved(event.model_name, change.alias, change.version)
                elif event.model_version.status == model_pb2.MODEL_VERSION_STATUS_READY:
                    yield VersionReady(event.model_name, event.version)
        except Exception:
            if not stop.is_set():
                raise
        finally:
            call.cancel()

    def health(self) -> str:
        return self._client.health(timeout=1.0)

    def close(self) -> None:
        self._client.close()
