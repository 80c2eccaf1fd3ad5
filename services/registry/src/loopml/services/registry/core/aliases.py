"""Aliases: atomic moves (compare-and-set), deletes, and their history."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from loopml.runtime.errors import (
    Aborted,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from loopml.services.registry.core import paging
from loopml.services.registry.core._base import RegistryBase, version_name
from loopml.services.registry.core.model import (
    AliasChange,
    EventType,
    VersionStatus,
    utcnow,
    validate_alias,
    validate_model_name,
)
from loopml.services.registry.core.rows import (
    append_event,
    change_of,
    find_model,
)
from loopml.services.registry.storage import AliasHistoryRow, AliasRow, ModelRow, VersionRow


class AliasOperations(RegistryBase):
    """Use cases on aliases."""

    # -- aliases -----------------------------------------------------------------------------

    def set_alias(
        self,
        model_name: str,
        alias: str,
        number: int,
        *,
        expected_version: int | None = None,
        reason: str = "",
        actor: str = "",
    ) -> AliasChange:
        validate_model_name(model_name, "model_name")
        validate_alias(alias)
        if number <= 0:
            raise InvalidArgument("version", "must be a positive version number")

        def work(session: Session) -> AliasChange:
            model = find_model(session, model_name, lock=True)
            row = session.scalars(
                select(VersionRow).where(VersionRow.model_id == model.id, VersionRow.version == number)
            ).one_or_none()
            if row is None:
                if number <= model.latest_version:
                    raise FailedPrecondition(
                        f"version {number} of model {model_name!r} was deleted",
                        subject=version_name(model_name, number),
                        violation_type="DELETED",
                    )
                raise NotFound("model version", version_name(model_name, number))
            if row.status != VersionStatus.READY.value:
                raise FailedPrecondition(
                    f"version {number} of model {model_name!r} is {row.status}, "
                    "only READY versions can be aliased",
                    subject=version_name(model_name, number),
                    violation_type="NOT_READY",
                )
            current = session.get(AliasRow, (model.id, alias))
            previous = current.version if current else 0
            if expected_version is not None and expected_version != previous:
                raise Aborted(
                    f"alias {alias!r} of model {model_name!r} points at version {previous or 'none'}, "
                    f"not the expected {expected_version or 'none'}"
                )
            if current is None:
                session.add(AliasRow(model_id=model.id, alias=alias, version=number))
            else:
                current.version = number
            return self._record_move(
                session, model, alias, previous, number, reason, actor, EventType.ALIAS_SET
            )

        return self._write(work)

    def delete_alias(self, model_name: str, alias: str, *, reason: str = "", actor: str = "") -> AliasChange:
        validate_model_name(model_name, "model_name")
        if not alias:
            raise InvalidArgument("alias", "is required")

        def work(session: Session) -> AliasChange:
            model = find_model(session, model_name, lock=True)
            current = session.get(AliasRow, (model.id, alias))
            if current is None:
                raise NotFound("alias", f"{model_name}@{alias}")
            previous = current.version
            session.delete(current)
            return self._record_move(
                session, model, alias, previous, 0, reason, actor, EventType.ALIAS_DELETED
            )

        return self._write(work)

    @staticmethod
    def _record_move(
        session,
        model: ModelRow,
        alias: str,
        previous: int,
        number: int,
        reason: str,
        actor: str,
        event: EventType,
    ) -> AliasChange:
        now = utcnow()
        history = AliasHistoryRow(
            model_id=model.id,
            alias=alias,
            previous_version=previous,
            version=number,
            changed_by=actor,
            change_time=now,
            reason=reason,
        )
        session.add(history)
        model.update_time = now
        change = change_of(history, model.name)
        append_event(session, event, model.name, number or previous, detail=change)
        return change

    def alias_history(
        self, model_name: str, *, alias: str = "", page_size: int = 0, page_token: str = ""
    ) -> tuple[list[AliasChange], str]:
        validate_model_name(model_name, "model_name")
        size = paging.page_size(page_size)
        offset = paging.decode(page_token)
        with self.database.session() as session:
            model = find_model(session, model_name)
            query = select(AliasHistoryRow).where(AliasHistoryRow.model_id == model.id)
            if alias:
                query = query.where(AliasHistoryRow.alias == alias)
            rows = list(
                session.scalars(query.order_by(AliasHistoryRow.id.desc()).offset(offset).limit(size + 1))
            )
            changes = [change_of(r, model_name) for r in rows[:size]]
        return changes, paging.next_token(offset, size, len(rows))
