"""gRPC adapter of the dataset service: translate, call the core, translate back."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from loopml.dataset.v1 import dataset_service_pb2 as pb
from loopml.dataset.v1 import dataset_service_pb2_grpc
from loopml.runtime.errors import Cancelled, InvalidArgument
from loopml.services.dataset import convert
from loopml.services.dataset.core import DatasetCore

#: Who is calling, as the SDK reports it (its user name); recorded as `created_by`. Bearer tokens
#: carry a role, not a person, so this header is the only identity there is.
ACTOR_HEADER = "x-loopml-actor"


def _actor(context) -> str:
    return dict(context.invocation_metadata() or ()).get(ACTOR_HEADER, "")[:256]


def _chunks(requests: Iterator[pb.UploadDatasetRequest], context) -> Iterator[bytes]:
    """The bytes after the header; a client that goes away becomes `Cancelled`."""
    try:
        for request in requests:
            if request.WhichOneof("payload") == "header":
                raise InvalidArgument("header", "was sent twice: only the first message carries it")
            yield request.chunk
    except grpc.RpcError:
        raise Cancelled("the client cancelled the upload; nothing was stored") from None
    if not context.is_active():
        raise Cancelled("the client cancelled the upload; nothing was stored")


class DatasetServiceServicer(dataset_service_pb2_grpc.DatasetServiceServicer):
    def __init__(self, core: DatasetCore):
        self.core = core

    def UploadDataset(self, request_iterator, context):
        try:
            first = next(request_iterator, None)
        except grpc.RpcError:
            raise Cancelled("the client cancelled the upload; nothing was stored") from None
        if first is None or first.WhichOneof("payload") != "header":
            raise InvalidArgument("header", "the first message of the stream must carry the header")
        dataset, version, created = self.core.upload(
            convert.upload_options(first.header, _actor(context)),
            _chunks(request_iterator, context),
            context.is_active,
        )
        return pb.UploadDatasetResponse(
            dataset=convert.dataset_pb(dataset), version=convert.version_pb(version), created=created
        )

    def ImportDataset(self, request, context):
        dataset, version, created = self.core.import_object(
            convert.import_options(request, _actor(context)), request.uri
        )
        return pb.ImportDatasetResponse(
            dataset=convert.dataset_pb(dataset), version=convert.version_pb(version), created=created
        )

    def GetDataset(self, request, context):
        dataset, version = self.core.get(request.dataset_id, request.name, request.version)
        return pb.GetDatasetResponse(dataset=convert.dataset_pb(dataset), version=convert.version_pb(version))

    def ListDatasets(self, request, context):
        items, token = self.core.list(
            request.page_size, request.page_token, request.name_prefix, dict(request.tags), request.order_by
        )
        return pb.ListDatasetsResponse(datasets=[convert.dataset_pb(d) for d in items], next_page_token=token)

    def ListDatasetVersions(self, request, context):
        items, token = self.core.list_versions(request.dataset_id, request.page_size, request.page_token)
        return pb.ListDatasetVersionsResponse(
            versions=[convert.version_pb(v) for v in items], next_page_token=token
        )

    def DeleteDataset(self, request, context):
        versions, objects = self.core.delete(request.dataset_id, request.version, request.force)
        return pb.DeleteDatasetResponse(deleted_versions=versions, deleted_object_count=objects)

    def GetDatasetProfile(self, request, context):
        profile = self.core.profile(
            request.dataset.dataset_id,
            request.dataset.version,
            request.split_id,
            convert.split_part(request.part),
        )
        return pb.GetDatasetProfileResponse(profile=convert.profile_pb(profile))

    def PreviewDataset(self, request, context):
        preview = self.core.preview(
            request.dataset.dataset_id,
            request.dataset.version,
            sample=request.mode == pb.PREVIEW_MODE_SAMPLE,
            seed=request.seed,
            columns=list(request.columns),
            split_id=request.split_id,
            part=convert.split_part(request.part),
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.PreviewDatasetResponse(
            columns=[convert.column_pb(c) for c in preview.columns],
            rows=convert.table_pb(preview.table),
            total_rows=preview.total_rows,
            next_page_token=preview.next_page_token,
        )

    def UpdateColumnRoles(self, request, context):
        updates = [
            (u.column, convert.column_role(u.role), convert.column_type(u.type), u.reset)
            for u in request.updates
        ]
        version = self.core.update_columns(request.dataset.dataset_id, request.dataset.version, updates)
        return pb.UpdateColumnRolesResponse(version=convert.version_pb(version))

    def CreateSplit(self, request, context):
        split, created = self.core.create_split(
            request.dataset.dataset_id,
            request.dataset.version,
            convert.split_spec(request.spec),
            request.name,
        )
        return pb.CreateSplitResponse(split=convert.split_pb(split), created=created)

    def DownloadDataset(self, request, context):
        form = {pb.DATASET_FORM_ORIGINAL: False, pb.DATASET_FORM_CANONICAL: True}.get(request.form)
        download = self.core.download(
            request.dataset.dataset_id,
            request.dataset.version,
            form,
            request.split_id,
            convert.split_part(request.part),
        )
        yield pb.DownloadDatasetResponse(header=convert.download_header_pb(download))
        for chunk in download.chunks:
            yield pb.DownloadDatasetResponse(chunk=chunk)
