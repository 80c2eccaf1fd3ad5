"""Versions: uploads into the object store, references to existing objects, reads, deletes.

A version is inserted PENDING, its bytes are streamed into the store (an atomic put: a failed or
abandoned upload leaves no object), and a second transaction marks it READY or FAILED.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from loopml.runtime.errors import (
    Aborted,
    AlreadyExists,
    DataLoss,
    FailedPrecondition,
    InvalidArgument,
    LoopmlError,
    NotFound,
    ResourceExhausted,
)
from loopml.services.registry.core import paging
from loopml.services.registry.core._base import RegistryBase, version_name
from loopml.services.registry.core.model import (
    EventType,
    ModelVersion,
    VersionSpec,
    VersionStatus,
    lineage_keys,
    normalize_sha256,
    utcnow,
    validate_model_name,
)
from loopml.services.registry.core.rows import (
    aliases_of,
    append_event,
    find_model,
    version_of,
)
from loopml.services.registry.storage import ModelRow, VersionRow


class VersionOperations(RegistryBase):
    """Use cases on versions."""

    # -- versions ----------------------------------------------------------------------------

    def create_version(
        self, spec: VersionSpec, chunks: Iterable[bytes] | None, *, actor: str = ""
    ) -> ModelVersion:
        """Register a version. With `existing_artifact_uri` the object must already be in the
        store (`chunks` is None); otherwise `chunks` are streamed into the store. READY only once
        the stored bytes match the declared sha256."""
        validate_model_name(spec.model_name, "header.model_name")
        sha256 = normalize_sha256(spec.sha256, "header.sha256")
        if sha256 is None:
            raise InvalidArgument("header.sha256", "is required: the sha256 (hex) of the artifact")
        spec.sha256 = sha256
        if spec.size_bytes < 0:
            raise InvalidArgument("header.size_bytes", "must not be negative")
        if spec.size_bytes > self.max_artifact_bytes:
            raise ResourceExhausted(
                f"artifact of {spec.size_bytes} bytes is over the limit of {self.max_artifact_bytes}"
            )
        if spec.request_id:
            earlier = self._version_by_request_id(spec)
            if earlier is not None:
                return earlier
        if spec.create_model_if_missing:
            try:
                self.create_model(spec.model_name, actor=actor)
            except AlreadyExists:
                pass
        if spec.existing_artifact_uri:
            return self._adopt_existing(spec, actor)
        if chunks is None:
            raise InvalidArgument(
                "chunk", "the artifact bytes are missing (or set header.existing_artifact_uri)"
            )
        pending = self._insert_version(spec, actor, VersionStatus.PENDING)
        key = f"models/{spec.model_name}/{pending.version}-{uuid.uuid4().hex[:12]}.bin"
        try:
            info = self.store.put(key, self._limited(chunks), expected_sha256=sha256)
            if spec.size_bytes and info.size != spec.size_bytes:
                self.store.delete(key)
                raise InvalidArgument(
                    "header.size_bytes", f"declared {spec.size_bytes} bytes, received {info.size}"
                )
        except BaseException as exc:
            self._finish(
                spec.model_name, pending.version, VersionStatus.FAILED, message=_failure_message(exc)
            )
            if isinstance(exc, DataLoss):  # the bytes sent do not match the sha256 the client declared
                raise InvalidArgument("header.sha256", f"does not match the uploaded bytes: {exc}") from exc
            raise
        ready = self._finish(
            spec.model_name, pending.version, VersionStatus.READY, key=key, uri=info.uri, size=info.size
        )
        if ready is None:  # the PENDING version was deleted, or failed as abandoned, meanwhile
            self._delete_object_if_unreferenced(key)
            raise Aborted(
                f"version {pending.version} of model {spec.model_name!r} was deleted or marked FAILED "
                "while its artifact was uploading; upload it again"
            )
        return ready

    def fail_abandoned_uploads(self, older_than: timedelta) -> int:
        """Mark FAILED the PENDING versions whose upload made no progress for `older_than` (their
        server died mid-upload; the object store never kept their partial bytes). Returns how many."""
        cutoff = utcnow() - older_than
        with self.database.session() as session:
            stale = session.execute(
                select(ModelRow.name, VersionRow.version)
                .join(ModelRow, ModelRow.id == VersionRow.model_id)
                .where(VersionRow.status == VersionStatus.PENDING.value, VersionRow.update_time < cutoff)
            ).all()
        failed = 0
        for name, number in stale:
            if (
                self._finish(
                    name,
                    number,
                    VersionStatus.FAILED,
                    message=f"upload abandoned: no progress for {older_than.total_seconds():.0f} s",
                )
                is not None
            ):
                failed += 1
        return failed

    def _limited(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        total = 0
        for chunk in chunks:
            total += len(chunk)
            if total > self.max_artifact_bytes:
                raise ResourceExhausted(f"artifact is over the limit of {self.max_artifact_bytes} bytes")
            yield chunk

    def _adopt_existing(self, spec: VersionSpec, actor: str) -> ModelVersion:
        try:
            key = self.store.key_from_uri(spec.existing_artifact_uri)
        except InvalidArgument as exc:
            raise InvalidArgument("header.existing_artifact_uri", exc.violations[0].description) from exc
        try:
            info = self.store.register_existing(key, expected_sha256=spec.sha256)
        except NotFound:
            raise NotFound("object", spec.existing_artifact_uri) from None
        except DataLoss as exc:
            raise InvalidArgument("header.sha256", f"does not match the referenced object: {exc}") from exc
        if spec.size_bytes and info.size != spec.size_bytes:
            raise InvalidArgument(
                "header.size_bytes", f"declared {spec.size_bytes} bytes, the object has {info.size}"
            )
        return self._insert_version(spec, actor, VersionStatus.READY, key=key, uri=info.uri, size=info.size)

    def _insert_version(
        self,
        spec: VersionSpec,
        actor: str,
        status: VersionStatus,
        *,
        key: str = "",
        uri: str = "",
        size: int = 0,
    ) -> ModelVersion:
        dataset_id, dataset_version, search_id = lineage_keys(spec.lineage)

        def work(session: Session) -> ModelVersion:
            model = find_model(session, spec.model_name, lock=True)  # the per-model counter
            model.latest_version += 1
            now = utcnow()
            model.update_time = now
            row = VersionRow(
                model_id=model.id,
                version=model.latest_version,
                status=status.value,
                status_message="",
                artifact_key=key,
                artifact_uri=uri,
                sha256=spec.sha256,
                size_bytes=size,
                flavor=spec.flavor,
                signature=spec.signature,
                metrics=spec.metrics,
                params=spec.params,
                lineage=spec.lineage,
                lineage_dataset_id=dataset_id,
                lineage_dataset_version=dataset_version,
                lineage_search_id=search_id,
                feature_importances=spec.feature_importances,
                requirements=spec.requirements,
                tags=spec.tags,
                description=spec.description,
                request_id=spec.request_id,
                created_by=actor,
                create_time=now,
                update_time=now,
            )
            session.add(row)
            session.flush()
            version = version_of(row, spec.model_name, {})
            append_event(session, EventType.VERSION_CREATED, spec.model_name, row.version, detail=version)
            return version

        return self._write(work)

    def _finish(
        self,
        model_name: str,
        number: int,
        status: VersionStatus,
        *,
        message: str = "",
        key: str = "",
        uri: str = "",
        size: int = 0,
    ) -> ModelVersion | None:
        def work(session: Session) -> ModelVersion | None:
            model = find_model(session, model_name, lock=True)
            row = session.scalars(
                select(VersionRow).where(VersionRow.model_id == model.id, VersionRow.version == number)
            ).one_or_none()
            if row is None or row.status != VersionStatus.PENDING.value:  # deleted, or failed as abandoned
                return None
            now = utcnow()
            row.status, row.status_message, row.update_time = status.value, message, now
            if status is VersionStatus.READY:
                row.artifact_key, row.artifact_uri, row.size_bytes = key, uri, size
            model.update_time = now
            version = version_of(row, model_name, aliases_of(session, [model.id])[model.id])
            append_event(session, EventType.VERSION_STATUS_CHANGED, model_name, number, detail=version)
            return version

        try:
            return self._write(work)
        except NotFound:  # the model was deleted meanwhile
            return None

    def _version_by_request_id(self, spec: VersionSpec) -> ModelVersion | None:
        with self.database.session() as session:
            model = session.scalars(select(ModelRow).where(ModelRow.name == spec.model_name)).one_or_none()
            if model is None:
                return None
            row = session.scalars(
                select(VersionRow).where(
                    VersionRow.model_id == model.id, VersionRow.request_id == spec.request_id
                )
            ).first()
            if row is None or row.status == VersionStatus.FAILED.value:
                return None
            if row.sha256 != spec.sha256:
                raise AlreadyExists(
                    "request_id",
                    spec.request_id,
                    f"request_id {spec.request_id!r} was used for version {row.version} "
                    "with a different sha256",
                )
            return version_of(row, spec.model_name, aliases_of(session, [model.id])[model.id])

    def get_version(self, model_name: str, number: int) -> ModelVersion:
        validate_model_name(model_name, "model_name")
        if number <= 0:
            raise InvalidArgument("version", "must be a positive version number")
        with self.database.session() as session:
            model = find_model(session, model_name)
            row = self._version_row(session, model, number)
            return version_of(row, model_name, aliases_of(session, [model.id])[model.id])

    @staticmethod
    def _version_row(session: Session, model: ModelRow, number: int) -> VersionRow:
        row = session.scalars(
            select(VersionRow).where(VersionRow.model_id == model.id, VersionRow.version == number)
        ).one_or_none()
        if row is None:
            raise NotFound("model version", version_name(model.name, number))
        return row

    def list_versions(
        self,
        *,
        model_name: str = "",
        statuses: Iterable[VersionStatus] = (),
        lineage_dataset_id: str = "",
        lineage_dataset_version: int = 0,
        lineage_search_id: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> tuple[list[ModelVersion], str]:
        size = paging.page_size(page_size)
        offset = paging.decode(page_token)
        if lineage_dataset_version and not lineage_dataset_id:
            raise InvalidArgument("lineage_dataset_version", "needs lineage_dataset_id")
        if lineage_dataset_version < 0:
            raise InvalidArgument("lineage_dataset_version", "must not be negative")
        query = select(VersionRow, ModelRow.name).join(ModelRow, ModelRow.id == VersionRow.model_id)
        statuses = [s.value for s in statuses]
        if statuses:
            query = query.where(VersionRow.status.in_(statuses))
        if lineage_dataset_id:
            query = query.where(VersionRow.lineage_dataset_id == lineage_dataset_id)
        if lineage_dataset_version:
            query = query.where(VersionRow.lineage_dataset_version == lineage_dataset_version)
        if lineage_search_id:
            query = query.where(VersionRow.lineage_search_id == lineage_search_id)
        with self.database.session() as session:
            if model_name:
                validate_model_name(model_name, "model_name")
                model = find_model(session, model_name)
                query = query.where(VersionRow.model_id == model.id).order_by(VersionRow.version.desc())
            else:
                query = query.order_by(VersionRow.create_time.desc(), VersionRow.id.desc())
            rows = list(session.execute(query.offset(offset).limit(size + 1)))[: size + 1]
            aliases = aliases_of(session, list({r.VersionRow.model_id for r in rows[:size]}))
            versions = [version_of(r.VersionRow, r.name, aliases[r.VersionRow.model_id]) for r in rows[:size]]
        return versions, paging.next_token(offset, size, len(rows))

    def delete_version(self, model_name: str, number: int, *, actor: str = "") -> None:
        validate_model_name(model_name, "model_name")

        def work(session: Session) -> str:
            model = find_model(session, model_name, lock=True)
            row = self._version_row(session, model, number)
            aliases = aliases_of(session, [model.id])[model.id]
            pointing = sorted(a for a, v in aliases.items() if v == number)
            if pointing:
                raise FailedPrecondition(
                    f"version {number} of model {model_name!r} is the target of alias(es) "
                    f"{', '.join(pointing)}; "
                    "move or delete them first",
                    subject=version_name(model_name, number),
                    violation_type="ALIASED",
                )
            version = version_of(row, model_name, aliases)
            session.delete(row)
            model.update_time = utcnow()
            append_event(session, EventType.VERSION_DELETED, model_name, number, detail=version)
            return row.artifact_key

        key = self._write(work)
        if key:
            self._delete_object_if_unreferenced(key)


def _failure_message(exc: BaseException) -> str:
    if isinstance(exc, DataLoss):
        return "checksum mismatch: the uploaded bytes do not match the declared sha256"
    if isinstance(exc, LoopmlError):
        return f"upload failed: {exc.message}"
    return f"upload failed: {type(exc).__name__}"
