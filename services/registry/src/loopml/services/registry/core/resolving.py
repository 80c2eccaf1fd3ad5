"""Resolving name + alias / version / latest, and opening artifacts: the serving hot path."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import and_, func, select
from sqlalchemy.orm import aliased

from loopml.runtime.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from loopml.services.registry.core._base import RegistryBase, version_name
from loopml.services.registry.core.model import (
    ModelVersion,
    Selector,
    VersionStatus,
    validate_model_name,
)
from loopml.services.registry.core.rows import (
    version_of,
)
from loopml.services.registry.storage import AliasRow, ModelRow, VersionRow

#: Most (model, selector) answers kept by ResolveModel's cache (cleared when full).
_CACHE_ENTRIES = 10_000

#: Second references to these tables, for the subqueries of `resolve`.
_READY_VERSION = aliased(VersionRow)
_CHOSEN_ALIAS = aliased(AliasRow)


class ResolveOperations(RegistryBase):
    """Read-only use cases of serving."""

    # -- resolving and downloading -----------------------------------------------------------

    def resolve(self, model_name: str, selector: Selector) -> ModelVersion:
        """The READY version name + selector points at. The hot path of serving: answered from a
        cache while no event happened since it was read (see RegistryBase), else by one SELECT.
        The returned object is shared: do not modify it."""
        epoch = self._epoch()  # read before the database, so a change racing the read evicts it
        key = (model_name, selector)
        if epoch >= 0:
            cached = self._resolved.get(key)
            if cached is not None and cached[0] == epoch:
                return cached[1]
        version = self._resolve_from_database(model_name, selector)
        if epoch >= 0:
            if len(self._resolved) >= _CACHE_ENTRIES:
                self._resolved.clear()
            self._resolved[key] = (epoch, version)
        return version

    def _resolve_from_database(self, model_name: str, selector: Selector) -> ModelVersion:
        """One SELECT (a row per alias of the model, each carrying the selected version's
        columns), outside an explicit transaction on PostgreSQL."""
        validate_model_name(model_name, "model.name")
        versions = VersionRow.__table__
        if selector.latest:
            ready = _READY_VERSION
            target = (
                select(func.max(ready.version))
                .where(ready.model_id == ModelRow.id, ready.status == VersionStatus.READY.value)
                .correlate(ModelRow)
                .scalar_subquery()
            )
        elif selector.alias:
            chosen = _CHOSEN_ALIAS
            target = (
                select(chosen.version)
                .where(chosen.model_id == ModelRow.id, chosen.alias == selector.alias)
                .correlate(ModelRow)
                .scalar_subquery()
            )
        elif selector.version > 0:
            target = selector.version
        else:
            raise InvalidArgument("model.version", "must be a positive version number")
        query = (
            select(
                ModelRow.id.label("model_pk"),
                AliasRow.alias.label("alias_name"),
                AliasRow.version.label("alias_version"),
                versions,
            )
            .select_from(ModelRow)
            .outerjoin(AliasRow, AliasRow.model_id == ModelRow.id)
            .outerjoin(versions, and_(versions.c.model_id == ModelRow.id, versions.c.version == target))
            .where(ModelRow.name == model_name)
        )
        rows = self._read(query)
        if not rows:
            raise NotFound("model", model_name)
        aliases = {r.alias_name: r.alias_version for r in rows if r.alias_name is not None}
        row = rows[0]
        if row.version is None:
            if selector.latest:
                raise NotFound(
                    "model version", f"{model_name}@latest", f"model {model_name!r} has no READY version"
                )
            if selector.alias and selector.alias not in aliases:
                raise NotFound("alias", f"{model_name}@{selector.alias}")
            raise NotFound("model version", version_name(model_name, selector.version))
        if row.status != VersionStatus.READY.value:
            raise FailedPrecondition(
                f"version {row.version} of model {model_name!r} is {row.status}",
                subject=version_name(model_name, row.version),
                violation_type="NOT_READY",
            )
        return version_of(row, model_name, aliases)

    def open_artifact(
        self, model_name: str, selector: Selector, offset: int = 0, chunk_size: int = 1024 * 1024
    ) -> tuple[ModelVersion, Iterator[bytes]]:
        """The resolved version and its bytes from `offset`; the store verifies the sha256 as
        they stream and raises DataLoss at the end if they do not match."""
        version = self.resolve(model_name, selector)
        if offset < 0 or offset > version.size_bytes:
            raise InvalidArgument("offset", f"must be between 0 and the artifact size {version.size_bytes}")
        key = self.store.key_from_uri(version.artifact_uri)
        chunks = self.store.get(key, chunk_size=chunk_size, expected_sha256=version.sha256)
        return version, _skip(chunks, offset)


def _skip(chunks: Iterator[bytes], offset: int) -> Iterator[bytes]:
    """Drop the first `offset` bytes (the whole object is still read, so it is still verified)."""
    for chunk in chunks:
        if offset >= len(chunk):
            offset -= len(chunk)
            continue
        yield chunk[offset:] if offset else chunk
        offset = 0
