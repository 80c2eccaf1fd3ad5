"""`RegistryClient`: models, versions, aliases, artifacts and events of the registry service.

Uploads compute the sha256 client-side and the service verifies it; downloads are verified
against the sha256 the service sends (a mismatch raises `DataLossError`)::

    with RegistryClient() as registry:
        version = registry.upload_version("churn", "model.pkl", create_model_if_missing=True,
                                          metrics={"accuracy": 0.91}, lineage={"dataset_id": "d1",
                                          "dataset_version": 3, "search_id": "s1"})
        registry.set_alias("churn", "production", version.version)
        data = registry.download("churn", alias="production")
"""

from __future__ import annotations

import getpass
import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import grpc

from loopml.client.base import ServiceClient
from loopml.client.errors import DataLossError, from_rpc_error
from loopml.common.v1 import metric_pb2, refs_pb2, value_pb2
from loopml.common.v1 import model_pb2 as common_model_pb2
from loopml.registry.v1 import model_pb2, registry_service_pb2_grpc
from loopml.registry.v1 import registry_service_pb2 as pb

CHUNK_BYTES = 1024 * 1024
ACTOR_HEADER = "x-loopml-actor"

ArtifactSource = bytes | bytearray | memoryview | str | os.PathLike | BinaryIO | Iterable[bytes]


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name available (containers)
        return ""


def model_ref(name: str, *, alias: str | None = None, version: int | None = None, latest: bool = False):
    """A ModelRef: by version, alias or latest; none given means the alias "production"."""
    if version is not None:
        return refs_pb2.ModelRef(name=name, version=version)
    if latest:
        return refs_pb2.ModelRef(name=name, latest=True)
    return refs_pb2.ModelRef(name=name, alias=alias or "production")


def to_value(value: Any) -> value_pb2.Value:
    if isinstance(value, value_pb2.Value):
        return value
    if value is None:
        return value_pb2.Value(null_value=0)
    if isinstance(value, bool):
        return value_pb2.Value(bool_value=value)
    if isinstance(value, int):
        return value_pb2.Value(int64_value=value)
    if isinstance(value, float):
        return value_pb2.Value(double_value=value)
    return value_pb2.Value(string_value=str(value))


def from_value(value: value_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind in (None, "null_value"):
        return None
    if kind == "timestamp_value":
        return value.timestamp_value.ToDatetime().isoformat()
    return getattr(value, kind)


def to_metrics(metrics) -> list[metric_pb2.MetricScore]:
    """MetricScore messages, or a dict like {"accuracy": 0.91} (cross-validation scores)."""
    if metrics is None:
        return []
    if isinstance(metrics, dict):
        return [
            metric_pb2.MetricScore(
                metric=metric_pb2.MetricName.Value(f"METRIC_NAME_{k.upper()}"),
                value=v,
                evaluation_set=metric_pb2.EVALUATION_SET_CROSS_VALIDATION,
            )
            for k, v in metrics.items()
        ]
    return list(metrics)


def to_lineage(lineage) -> common_model_pb2.Lineage | None:
    """A Lineage message, or a dict with dataset_id, dataset_version, split_id, search_id, trial_id."""
    if lineage is None or isinstance(lineage, common_model_pb2.Lineage):
        return lineage
    data = dict(lineage)
    return common_model_pb2.Lineage(
        dataset=refs_pb2.DatasetRef(
            dataset_id=data.pop("dataset_id", ""), version=data.pop("dataset_version", 0)
        ),
        **data,
    )


def _hash_source(source: ArtifactSource) -> tuple[str, int, Iterable[bytes], Path | None]:
    """(sha256, size, a re-iterable of the bytes, a temporary file to remove afterwards)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        chunks = [data[i : i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)]
        return hashlib.sha256(data).hexdigest(), len(data), chunks, None
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        digest, size = hashlib.sha256(), 0
        with path.open("rb") as f:
            while block := f.read(CHUNK_BYTES):
                digest.update(block)
                size += len(block)
        return digest.hexdigest(), size, _read_file(path), None
    # a file object or an iterator of chunks: spool it once to learn its sha256
    blocks = iter(lambda: source.read(CHUNK_BYTES), b"") if hasattr(source, "read") else source
    digest, size = hashlib.sha256(), 0
    fd, name = tempfile.mkstemp(prefix="loopml-upload-")
    with os.fdopen(fd, "wb") as spool:
        for block in blocks:
            digest.update(block)
            size += len(block)
            spool.write(block)
    return digest.hexdigest(), size, _read_file(Path(name)), Path(name)


class _read_file:
    def __init__(self, path: Path):
        self.path = path

    def __iter__(self) -> Iterator[bytes]:
        with self.path.open("rb") as f:
            while block := f.read(CHUNK_BYTES):
                yield block


class RegistryClient(ServiceClient):
    service = "registry"
    stub_class = registry_service_pb2_grpc.RegistryServiceStub
    full_name = "loopml.registry.v1.RegistryService"

    def __init__(self, config=None, *, channel: grpc.Channel | None = None, actor: str | None = None):
        super().__init__(config, channel=channel)
        self.actor = _default_actor() if actor is None else actor

    def _call(self, method: str, request, *, timeout: float | None = None):
        metadata = ((ACTOR_HEADER, self.actor),) if self.actor else None
        try:
            return getattr(self.stub, method)(request, timeout=self._timeout(timeout), metadata=metadata)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    # -- models ------------------------------------------------------------------------------

    def create_model(
        self, name: str, *, description: str = "", tags: dict[str, str] | None = None
    ) -> model_pb2.Model:
        return self._call(
            "CreateModel", pb.CreateModelRequest(name=name, description=description, tags=tags or {})
        ).model

    def get_model(self, name: str) -> model_pb2.Model:
        return self._call("GetModel", pb.GetModelRequest(name=name)).model

    def list_models(
        self,
        *,
        name_prefix: str = "",
        tags: dict[str, str] | None = None,
        order_by: str = "",
        page_size: int = 0,
        limit: int | None = None,
    ) -> list[model_pb2.Model]:
        """Every matching model (all pages), or the first `limit`."""
        request = pb.ListModelsRequest(
            name_prefix=name_prefix, tags=tags or {}, order_by=order_by, page_size=page_size
        )
        return self._all_pages("ListModels", request, "models", limit)

    def delete_model(self, name: str, *, force: bool = False) -> None:
        self._call("DeleteModel", pb.DeleteModelRequest(name=name, force=force))

    def _all_pages(self, method: str, request, field: str, limit: int | None):
        items: list = []
        while True:
            response = self._call(method, request)
            items.extend(getattr(response, field))
            if not response.next_page_token or (limit is not None and len(items) >= limit):
                return items[:limit] if limit is not None else items
            request.page_token = response.next_page_token

    # -- versions ----------------------------------------------------------------------------

    def upload_version(
        self,
        model_name: str,
        artifact: ArtifactSource,
        *,
        create_model_if_missing: bool = False,
        flavor: int | str = 0,
        signature: common_model_pb2.ModelSignature | None = None,
        metrics=None,
        params: dict[str, Any] | None = None,
        lineage=None,
        feature_importances: Iterable[metric_pb2.FeatureImportance] = (),
        requirements: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        description: str = "",
        request_id: str = "",
        timeout: float | None = None,
    ) -> model_pb2.ModelVersion:
        """Create a version from bytes, a file path, a binary file object or an iterator of byte
        chunks. The sha256 is computed here and verified by the service; returns the READY version."""
        sha256, size, chunks, spooled = _hash_source(artifact)
        try:
            header = self._header(
                model_name,
                sha256,
                size,
                create_model_if_missing,
                flavor,
                signature,
                metrics,
                params,
                lineage,
                feature_importances,
                requirements,
                tags,
                description,
                request_id,
            )

            def requests():
                yield pb.CreateModelVersionRequest(header=header)
                for chunk in chunks:
                    yield pb.CreateModelVersionRequest(chunk=chunk)

            return self._call("CreateModelVersion", requests(), timeout=timeout).model_version
        finally:
            if spooled is not None:
                spooled.unlink(missing_ok=True)

    def register_existing(
        self, model_name: str, artifact_uri: str, sha256: str, **metadata
    ) -> model_pb2.ModelVersion:
        """Create a version over an object already in the registry's object store."""
        header = self._header(
            model_name,
            sha256,
            metadata.pop("size_bytes", 0),
            metadata.pop("create_model_if_missing", False),
            metadata.pop("flavor", 0),
            metadata.pop("signature", None),
            metadata.pop("metrics", None),
            metadata.pop("params", None),
            metadata.pop("lineage", None),
            metadata.pop("feature_importances", ()),
            metadata.pop("requirements", None),
            metadata.pop("tags", None),
            metadata.pop("description", ""),
            metadata.pop("request_id", ""),
        )
        if metadata:
            raise TypeError(f"unexpected arguments: {', '.join(metadata)}")
        header.existing_artifact_uri = artifact_uri
        return self._call(
            "CreateModelVersion", iter([pb.CreateModelVersionRequest(header=header)])
        ).model_version

    @staticmethod
    def _header(
        model_name,
        sha256,
        size,
        create_model_if_missing,
        flavor,
        signature,
        metrics,
        params,
        lineage,
        feature_importances,
        requirements,
        tags,
        description,
        request_id,
    ) -> pb.CreateModelVersionHeader:
        if isinstance(flavor, str):
            flavor = model_pb2.ModelFlavor.Value(f"MODEL_FLAVOR_{flavor.upper()}")
        return pb.CreateModelVersionHeader(
            model_name=model_name,
            create_model_if_missing=create_model_if_missing,
            sha256=sha256,
            size_bytes=size,
            flavor=flavor,
            signature=signature,
            metrics=to_metrics(metrics),
            params={k: to_value(v) for k, v in (params or {}).items()},
            lineage=to_lineage(lineage),
            feature_importances=list(feature_importances),
            requirements=requirements or {},
            tags=tags or {},
            description=description,
            request_id=request_id,
        )

    def get_version(self, model_name: str, version: int) -> model_pb2.ModelVersion:
        return self._call(
            "GetModelVersion", pb.GetModelVersionRequest(model_name=model_name, version=version)
        ).model_version

    def list_versions(
        self,
        model_name: str = "",
        *,
        statuses: Iterable[int] = (),
        lineage_dataset_id: str = "",
        lineage_dataset_version: int = 0,
        lineage_search_id: str = "",
        page_size: int = 0,
        limit: int | None = None,
    ) -> list[model_pb2.ModelVersion]:
        """Versions of one model (newest first), or with model_name "" of every model."""
        request = pb.ListModelVersionsRequest(
            model_name=model_name,
            statuses=list(statuses),
            lineage_dataset_id=lineage_dataset_id,
            lineage_dataset_version=lineage_dataset_version,
            lineage_search_id=lineage_search_id,
            page_size=page_size,
        )
        return self._all_pages("ListModelVersions", request, "model_versions", limit)

    def delete_version(self, model_name: str, version: int) -> None:
        self._call("DeleteModelVersion", pb.DeleteModelVersionRequest(model_name=model_name, version=version))

    # -- aliases -----------------------------------------------------------------------------

    def set_alias(
        self,
        model_name: str,
        alias: str,
        version: int,
        *,
        expected_version: int | None = None,
        reason: str = "",
    ) -> model_pb2.AliasChange:
        request = pb.SetAliasRequest(model_name=model_name, alias=alias, version=version, reason=reason)
        if expected_version is not None:
            request.expected_version = expected_version
        return self._call("SetAlias", request).change

    def delete_alias(self, model_name: str, alias: str, *, reason: str = "") -> model_pb2.AliasChange:
        return self._call(
            "DeleteAlias", pb.DeleteAliasRequest(model_name=model_name, alias=alias, reason=reason)
        ).change

    def alias_history(
        self, model_name: str, alias: str = "", *, limit: int | None = None
    ) -> list[model_pb2.AliasChange]:
        """Moves of the model's aliases (or one alias), newest first."""
        request = pb.GetAliasHistoryRequest(model_name=model_name, alias=alias)
        return self._all_pages("GetAliasHistory", request, "changes", limit)

    def rollback(
        self, model_name: str, alias: str = "production", *, reason: str = ""
    ) -> model_pb2.AliasChange:
        """Point `alias` back at the version it pointed at before its last move. Compare-and-set:
        if someone moved it meanwhile this raises an ABORTED error instead of undoing their move."""
        from loopml.client.errors import FailedPreconditionError, NotFoundError

        history = self.alias_history(model_name, alias, limit=1)
        if not history or history[0].version == 0:
            raise NotFoundError(
                "NOT_FOUND",
                f"alias {model_name}@{alias} does not exist",
                resource_type="alias",
                resource_name=f"{model_name}@{alias}",
            )
        last = history[0]
        if last.previous_version == 0:
            raise FailedPreconditionError(
                "FAILED_PRECONDITION", f"alias {model_name}@{alias} has no earlier version to roll back to"
            )
        return self.set_alias(
            model_name,
            alias,
            last.previous_version,
            expected_version=last.version,
            reason=reason or f"rollback from version {last.version}",
        )

    # -- resolving, downloading, watching ----------------------------------------------------

    def resolve(
        self, name: str, *, alias: str | None = None, version: int | None = None, latest: bool = False
    ) -> model_pb2.ModelVersion:
        """The READY version that name + alias / version / latest points at (default: production)."""
        ref = model_ref(name, alias=alias, version=version, latest=latest)
        return self._call("ResolveModel", pb.ResolveModelRequest(model=ref)).model_version

    def download(
        self,
        name: str,
        *,
        alias: str | None = None,
        version: int | None = None,
        latest: bool = False,
        dest: str | os.PathLike | None = None,
        timeout: float | None = None,
    ):
        """The artifact bytes (or, with `dest`, written to that file and the header returned),
        verified against the sha256 the registry recorded; DataLossError when they differ."""
        request = pb.DownloadModelArtifactRequest(
            model=model_ref(name, alias=alias, version=version, latest=latest)
        )
        responses = self.stream("DownloadModelArtifact", request, timeout=timeout)
        header = next(responses).header
        digest = hashlib.sha256()
        if dest is None:
            parts = []
            for response in responses:
                digest.update(response.chunk)
                parts.append(response.chunk)
            self._verify(header, digest)
            return b"".join(parts)
        target = Path(dest)
        partial = target.with_name(target.name + ".part")
        try:
            with partial.open("wb") as f:
                for response in responses:
                    digest.update(response.chunk)
                    f.write(response.chunk)
            self._verify(header, digest)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        return header

    @staticmethod
    def _verify(header: pb.DownloadModelArtifactHeader, digest) -> None:
        if digest.hexdigest() != header.sha256:
            raise DataLossError(
                "DATA_LOSS",
                f"downloaded artifact of {header.model_name} version {header.version} "
                f"has sha256 {digest.hexdigest()}, the registry recorded {header.sha256}",
            )

    def watch(
        self,
        model_name: str = "",
        *,
        types: Iterable[int] = (),
        after_sequence: int | None = None,
        timeout: float = 0,
    ) -> EventWatch:
        """Registry events as they happen: iterate the returned `EventWatch`; call its `cancel()`
        (from any thread) or leave its `with` block to stop. No deadline by default. With
        `after_sequence`, retained events after it are replayed first (resume after a restart)."""
        request = pb.WatchModelEventsRequest(model_name=model_name, types=list(types))
        if after_sequence is not None:
            request.after_sequence = after_sequence
        return EventWatch(self.stub.WatchModelEvents(request, timeout=self._timeout(timeout)))


class EventWatch:
    """An open WatchModelEvents stream: iterable of ModelEvent; `cancel()` ends it cleanly."""

    def __init__(self, call):
        self._call = call
        self._cancelled = False

    def __iter__(self) -> Iterator[model_pb2.ModelEvent]:
        try:
            for response in self._call:
                yield response.event
        except grpc.RpcError as error:
            if self._cancelled and error.code() == grpc.StatusCode.CANCELLED:
                return
            raise from_rpc_error(error) from None

    def cancel(self) -> None:
        self._cancelled = True
        self._call.cancel()

    close = cancel

    def __enter__(self) -> EventWatch:
        return self

    def __exit__(self, *exc) -> None:
        self.cancel()
