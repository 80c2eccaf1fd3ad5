"""gRPC adapter of the registry service: translate, call the core, translate back."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from loopml.registry.v1 import registry_service_pb2 as pb
from loopml.registry.v1 import registry_service_pb2_grpc
from loopml.runtime.errors import Cancelled, InvalidArgument
from loopml.services.registry import convert
from loopml.services.registry.core import EventFeed, Registry

#: Metadata key naming the person or system making a change (recorded as created_by/changed_by).
ACTOR_HEADER = "x-loopml-actor"


def _actor(context) -> str:
    return dict(context.invocation_metadata() or ()).get(ACTOR_HEADER, "")[:256]


class RegistryServiceServicer(registry_service_pb2_grpc.RegistryServiceServicer):
    def __init__(self, registry: Registry, feed: EventFeed, download_chunk_bytes: int):
        self.registry = registry
        self.feed = feed
        self.download_chunk_bytes = download_chunk_bytes

    # -- models ------------------------------------------------------------------------------

    def CreateModel(self, request, context):
        model = self.registry.create_model(
            request.name, request.description, dict(request.tags), actor=_actor(context)
        )
        return pb.CreateModelResponse(model=convert.model_to_proto(model))

    def GetModel(self, request, context):
        return pb.GetModelResponse(model=convert.model_to_proto(self.registry.get_model(request.name)))

    def ListModels(self, request, context):
        models, token = self.registry.list_models(
            name_prefix=request.name_prefix,
            tags=dict(request.tags),
            order_by=request.order_by,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListModelsResponse(
            models=[convert.model_to_proto(m) for m in models], next_page_token=token
        )

    def DeleteModel(self, request, context):
        self.registry.delete_model(request.name, force=request.force, actor=_actor(context))
        return pb.DeleteModelResponse()

    # -- versions ----------------------------------------------------------------------------

    def CreateModelVersion(self, request_iterator, context):
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("payload") != "header":
            raise InvalidArgument("header", "the first message must carry the header")
        spec = convert.spec_from_header(first.header)
        if spec.existing_artifact_uri:
            if next(_chunks(request_iterator), None) is not None:
                raise InvalidArgument("chunk", "no chunks may follow a header with existing_artifact_uri")
            chunks = None
        else:
            chunks = _chunks(request_iterator)
        version = self.registry.create_version(spec, chunks, actor=_actor(context))
        return pb.CreateModelVersionResponse(model_version=convert.version_to_proto(version))

    def GetModelVersion(self, request, context):
        version = self.registry.get_version(request.model_name, request.version)
        return pb.GetModelVersionResponse(model_version=convert.version_to_proto(version))

    def ListModelVersions(self, request, context):
        versions, token = self.registry.list_versions(
            model_name=request.model_name,
            statuses=[convert.status_from_proto(s) for s in request.statuses if s],
            lineage_dataset_id=request.lineage_dataset_id,
            lineage_dataset_version=request.lineage_dataset_version,
            lineage_search_id=request.lineage_search_id,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListModelVersionsResponse(
            model_versions=[convert.version_to_proto(v) for v in versions], next_page_token=token
        )

    def DeleteModelVersion(self, request, context):
        self.registry.delete_version(request.model_name, request.version, actor=_actor(context))
        return pb.DeleteModelVersionResponse()

    # -- aliases -----------------------------------------------------------------------------

    def SetAlias(self, request, context):
        expected = request.expected_version if request.HasField("expected_version") else None
        change = self.registry.set_alias(
            request.model_name,
            request.alias,
            request.version,
            expected_version=expected,
            reason=request.reason,
            actor=_actor(context),
        )
        return pb.SetAliasResponse(change=convert.change_to_proto(change))

    def DeleteAlias(self, request, context):
        change = self.registry.delete_alias(
            request.model_name, request.alias, reason=request.reason, actor=_actor(context)
        )
        return pb.DeleteAliasResponse(change=convert.change_to_proto(change))

    def GetAliasHistory(self, request, context):
        changes, token = self.registry.alias_history(
            request.model_name,
            alias=request.alias,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.GetAliasHistoryResponse(
            changes=[convert.change_to_proto(c) for c in changes], next_page_token=token
        )

    def ResolveModel(self, request, context):
        name, selector = convert.selector_from_ref(request.model)
        return pb.ResolveModelResponse(
            model_version=convert.version_to_proto(self.registry.resolve(name, selector))
        )

    def DownloadModelArtifact(self, request, context):
        name, selector = convert.selector_from_ref(request.model)
        version, chunks = self.registry.open_artifact(
            name, selector, request.offset, self.download_chunk_bytes
        )
        yield pb.DownloadModelArtifactResponse(
            header=pb.DownloadModelArtifactHeader(
                model_name=version.model_name,
                version=version.version,
                flavor=convert.flavor_to_proto(version.flavor),
                size_bytes=version.size_bytes,
                sha256=version.sha256,
                offset=request.offset,
            )
        )
        for chunk in chunks:
            yield pb.DownloadModelArtifactResponse(chunk=chunk)

    # -- events ------------------------------------------------------------------------------

    def WatchModelEvents(self, request, context):
        after = request.after_sequence if request.HasField("after_sequence") else None
        events = self.feed.watch(
            model_name=request.model_name,
            types=[convert.event_type_from_proto(t) for t in request.types if t],
            after_sequence=after,
            is_active=context.is_active,
        )
        for event in events:
            yield pb.WatchModelEventsResponse(event=convert.event_to_proto(event))


def _chunks(request_iterator) -> Iterator[bytes]:
    """The artifact bytes of a CreateModelVersion stream; a client that goes away is CANCELLED."""
    try:
        for message in request_iterator:
            if message.WhichOneof("payload") != "chunk":
                raise InvalidArgument("header", "only the first message may carry a header")
            yield message.chunk
    except grpc.RpcError:
        raise Cancelled("the client cancelled the upload") from None
