"""`DatasetClient`: upload, inspect, profile, preview, split and download datasets.

    with DatasetClient() as datasets:
        result = datasets.upload("churn.csv", name="churn", label_column="churn", progress=print)
        profile = datasets.profile(result.version.ref.dataset_id)

Methods return the generated messages (`loopml.dataset.v1`); `preview` can also hand back a pandas
DataFrame (`to_dataframe`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import grpc

from loopml.client.base import ServiceClient
from loopml.client.errors import from_rpc_error
from loopml.client.registry import ACTOR_HEADER, _default_actor
from loopml.common.v1 import refs_pb2, schema_pb2
from loopml.dataset.v1 import dataset_pb2, dataset_service_pb2_grpc
from loopml.dataset.v1 import dataset_service_pb2 as pb

CHUNK_SIZE = 1024 * 1024
#: Uploads and downloads get no deadline by default (they may take minutes); pass `timeout` to set one.
NO_DEADLINE = 0

_FORMATS = {
    "csv": dataset_pb2.DATA_FORMAT_CSV,
    "tsv": dataset_pb2.DATA_FORMAT_TSV,
    "parquet": dataset_pb2.DATA_FORMAT_PARQUET,
    "jsonl": dataset_pb2.DATA_FORMAT_JSONL,
}
_STRATEGIES = {
    "auto": dataset_pb2.SPLIT_STRATEGY_UNSPECIFIED,
    "random": dataset_pb2.SPLIT_STRATEGY_RANDOM,
    "stratified": dataset_pb2.SPLIT_STRATEGY_STRATIFIED,
    "group": dataset_pb2.SPLIT_STRATEGY_GROUP,
    "time": dataset_pb2.SPLIT_STRATEGY_TIME,
}
PARTS = {
    "train": dataset_pb2.SPLIT_PART_TRAIN,
    "validation": dataset_pb2.SPLIT_PART_VALIDATION,
    "test": dataset_pb2.SPLIT_PART_TEST,
}


def _enum(mapping: dict, value, what: str) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, int):
        return value
    try:
        return mapping[value.lower()]
    except KeyError:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(mapping)}") from None


def role(name: str) -> int:
    return schema_pb2.ColumnRole.Value(f"COLUMN_ROLE_{name.upper()}")


def column_type(name: str) -> int:
    return schema_pb2.ColumnType.Value(f"COLUMN_TYPE_{name.upper()}")


def ref(dataset_id: str, version: int = 0) -> refs_pb2.DatasetRef:
    return refs_pb2.DatasetRef(dataset_id=dataset_id, version=version)


class DatasetClient(ServiceClient):
    service = "dataset"
    stub_class = dataset_service_pb2_grpc.DatasetServiceStub
    full_name = "loopml.dataset.v1.DatasetService"

    def __init__(self, config=None, *, channel: grpc.Channel | None = None, actor: str | None = None):
        """`actor` is recorded as `created_by` of what this client uploads or imports; by default
        the user name of this process."""
        super().__init__(config, channel=channel)
        self.actor = _default_actor() if actor is None else actor

    def _as_actor(self, method: str, request, *, timeout: float | None = None):
        metadata = ((ACTOR_HEADER, self.actor),) if self.actor else None
        try:
            return getattr(self.stub, method)(request, timeout=self._timeout(timeout), metadata=metadata)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    # -- ingest ------------------------------------------------------------------------------------
    def upload(
        self,
        source: str | os.PathLike | BinaryIO,
        *,
        name: str,
        description: str = "",
        format: str | None = None,
        label_column: str = "",
        tags: dict[str, str] | None = None,
        filename: str = "",
        delimiter: str = "",
        progress: Callable[[int, int], None] | None = None,
        chunk_size: int = CHUNK_SIZE,
        timeout: float | None = NO_DEADLINE,
    ) -> pb.UploadDatasetResponse:
        """Stream a file (a path or a binary file object) as a new dataset or version.

        `progress(sent_bytes, total_bytes)` is called after each chunk (total is 0 when unknown).
        """
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            with open(path, "rb") as f:
                return self.upload(
                    f,
                    name=name,
                    description=description,
                    format=format,
                    label_column=label_column,
                    tags=tags,
                    filename=filename or path.name,
                    delimiter=delimiter,
                    progress=progress,
                    chunk_size=chunk_size,
                    timeout=timeout,
                )
        total = _size_of(source)
        header = pb.UploadDatasetHeader(
            name=name,
            description=description,
            filename=filename or getattr(source, "name", "") or "",
            format=_enum(_FORMATS, format, "format"),
            size_bytes=total,
            label_column=label_column,
            tags=tags or {},
            csv_options=dataset_pb2.CsvOptions(delimiter=delimiter),
        )
        if isinstance(header.filename, str) and "/" in header.filename:
            header.filename = header.filename.rsplit("/", 1)[-1]
        return self._as_actor(
            "UploadDataset", _upload_messages(header, source, chunk_size, total, progress), timeout=timeout
        )

    def import_object(
        self,
        uri: str,
        *,
        name: str,
        format: str | None = None,
        label_column: str = "",
        description: str = "",
        tags: dict[str, str] | None = None,
    ) -> pb.ImportDatasetResponse:
        return self._as_actor(
            "ImportDataset",
            pb.ImportDatasetRequest(
                name=name,
                uri=uri,
                format=_enum(_FORMATS, format, "format"),
                label_column=label_column,
                description=description,
                tags=tags or {},
            ),
            timeout=NO_DEADLINE,
        )

    # -- reading -----------------------------------------------------------------------------------
    def get(self, dataset: str, version: int = 0) -> pb.GetDatasetResponse:
        """By id, or by name when `dataset` is not an id that exists."""
        request = pb.GetDatasetRequest(version=version)
        if _looks_like_id(dataset):
            request.dataset_id = dataset
        else:
            request.name = dataset
        return self.call("GetDataset", request)

    def resolve(self, dataset: str, version: int = 0) -> refs_pb2.DatasetRef:
        """The concrete reference of a dataset given by id or name (version 0: the latest)."""
        return self.get(dataset, version).version.ref

    def list(
        self,
        *,
        name_prefix: str = "",
        tags: dict[str, str] | None = None,
        order_by: str = "",
        page_size: int = 0,
    ) -> Iterator[dataset_pb2.Dataset]:
        """Every matching dataset, fetching pages as needed."""
        token = ""
        while True:
            page = self.call(
                "ListDatasets",
                pb.ListDatasetsRequest(
                    page_size=page_size,
                    page_token=token,
                    name_prefix=name_prefix,
                    tags=tags or {},
                    order_by=order_by,
                ),
            )
            yield from page.datasets
            token = page.next_page_token
            if not token:
                return

    def list_page(self, **kwargs) -> pb.ListDatasetsResponse:
        return self.call("ListDatasets", pb.ListDatasetsRequest(**kwargs))

    def versions(self, dataset_id: str) -> Iterator[dataset_pb2.DatasetVersion]:
        token = ""
        while True:
            page = self.call(
                "ListDatasetVersions", pb.ListDatasetVersionsRequest(dataset_id=dataset_id, page_token=token)
            )
            yield from page.versions
            token = page.next_page_token
            if not token:
                return

    def profile(
        self, dataset_id: str, version: int = 0, *, split_id: str = "", part: str = ""
    ) -> dataset_pb2.DatasetProfile:
        return self.call(
            "GetDatasetProfile",
            pb.GetDatasetProfileRequest(
                dataset=ref(dataset_id, version),
                split_id=split_id,
                part=_enum(PARTS, part, "part"),
            ),
            timeout=NO_DEADLINE,
        ).profile

    def preview(
        self,
        dataset_id: str,
        version: int = 0,
        *,
        rows: int = 20,
        sample: bool = False,
        seed: int = 0,
        columns: list[str] | None = None,
        split_id: str = "",
        part: str = "",
        page_token: str = "",
    ) -> pb.PreviewDatasetResponse:
        return self.call(
            "PreviewDataset",
            pb.PreviewDatasetRequest(
                dataset=ref(dataset_id, version),
                mode=pb.PREVIEW_MODE_SAMPLE if sample else pb.PREVIEW_MODE_HEAD,
                seed=seed,
                columns=columns or [],
                split_id=split_id,
                part=_enum(PARTS, part, "part"),
                page_size=rows,
                page_token=page_token,
            ),
            timeout=NO_DEADLINE,
        )

    # -- changes -----------------------------------------------------------------------------------
    def set_roles(
        self,
        dataset_id: str,
        version: int = 0,
        *,
        label: str = "",
        roles: dict[str, str] | None = None,
        types: dict[str, str] | None = None,
        reset: list[str] | None = None,
    ) -> dataset_pb2.DatasetVersion:
        """Set the label, other roles (column -> role name) and type overrides (column -> type name)."""
        updates = [pb.ColumnUpdate(column=c, reset=True) for c in reset or []]
        for column, name in (roles or {}).items():
            updates.append(pb.ColumnUpdate(column=column, role=role(name)))
        for column, name in (types or {}).items():
            updates.append(pb.ColumnUpdate(column=column, type=column_type(name)))
        if label:
            updates.append(pb.ColumnUpdate(column=label, role=role("label")))
        return self.call(
            "UpdateColumnRoles",
            pb.UpdateColumnRolesRequest(dataset=ref(dataset_id, version), updates=updates),
            timeout=NO_DEADLINE,
        ).version

    def create_split(
        self,
        dataset_id: str,
        version: int = 0,
        *,
        train: float,
        validation: float = 0.0,
        test: float = 0.0,
        strategy: str = "auto",
        seed: int = 0,
        stratify_column: str = "",
        group_column: str = "",
        time_column: str = "",
        name: str = "",
    ) -> pb.CreateSplitResponse:
        spec = dataset_pb2.SplitSpec(
            strategy=_enum(_STRATEGIES, strategy, "strategy"),
            train_ratio=train,
            validation_ratio=validation,
            test_ratio=test,
            seed=seed,
            stratify_column=stratify_column,
            group_column=group_column,
            time_column=time_column,
        )
        return self.call(
            "CreateSplit",
            pb.CreateSplitRequest(dataset=ref(dataset_id, version), spec=spec, name=name),
            timeout=NO_DEADLINE,
        )

    def delete(self, dataset_id: str, version: int = 0, *, force: bool = False) -> pb.DeleteDatasetResponse:
        return self.call(
            "DeleteDataset", pb.DeleteDatasetRequest(dataset_id=dataset_id, version=version, force=force)
        )

    # -- download ----------------------------------------------------------------------------------
    def download(
        self,
        dataset_id: str,
        version: int = 0,
        *,
        destination: str | os.PathLike | BinaryIO,
        canonical: bool = False,
        split_id: str = "",
        part: str = "",
        progress: Callable[[int, int], None] | None = None,
    ) -> pb.DownloadDatasetHeader:
        """Write the dataset's bytes to `destination` (a path or a binary file object) and verify the sha256.

        A partly written file is removed when the download fails."""
        request = pb.DownloadDatasetRequest(
            dataset=ref(dataset_id, version),
            form=pb.DATASET_FORM_CANONICAL if canonical or split_id else pb.DATASET_FORM_ORIGINAL,
            split_id=split_id,
            part=_enum(PARTS, part, "part"),
        )
        if isinstance(destination, (str, os.PathLike)):
            path = Path(destination)
            try:
                with open(path, "wb") as f:
                    return self.download(
                        dataset_id,
                        version,
                        destination=f,
                        canonical=canonical,
                        split_id=split_id,
                        part=part,
                        progress=progress,
                    )
            except BaseException:
                path.unlink(missing_ok=True)
                raise
        header, digest, received = None, hashlib.sha256(), 0
        for message in self.stream("DownloadDataset", request, timeout=NO_DEADLINE):
            if message.WhichOneof("payload") == "header":
                header = message.header
                continue
            destination.write(message.chunk)
            digest.update(message.chunk)
            received += len(message.chunk)
            if progress:
                progress(received, header.size_bytes if header else 0)
        if header is None:
            raise OSError("the server sent no header")
        if header.sha256 and digest.hexdigest() != header.sha256:
            raise OSError(f"downloaded bytes do not match sha256 {header.sha256}")
        return header


def _looks_like_id(value: str) -> bool:
    return len(value) == 36 and value.count("-") == 4


def _size_of(source: BinaryIO) -> int:
    try:
        position = source.tell()
        size = os.fstat(source.fileno()).st_size
        return max(0, size - position)
    except (AttributeError, OSError, ValueError):
        pass
    try:
        here = source.tell()
        end = source.seek(0, os.SEEK_END)
        source.seek(here)
        return end - here
    except (AttributeError, OSError, ValueError):
        return 0


def _upload_messages(
    header, source: BinaryIO, chunk_size: int, total: int, progress
) -> Iterator[pb.UploadDatasetRequest]:
    yield pb.UploadDatasetRequest(header=header)
    sent = 0
    while True:
        chunk = source.read(chunk_size)
        if not chunk:
            return
        sent += len(chunk)
        yield pb.UploadDatasetRequest(chunk=chunk)
        if progress:
            progress(sent, total)


__all__ = ["DatasetClient", "column_type", "ref", "role"]
