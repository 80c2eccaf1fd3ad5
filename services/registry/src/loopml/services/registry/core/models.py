"""Models: create, get, list, delete."""

from __future__ import annotations

from sqlalchemy import and_, delete, desc, exists, select
from sqlalchemy.orm import Session

from loopml.runtime.db import map_unique_violation
from loopml.runtime.errors import (
    FailedPrecondition,
    InvalidArgument,
)
from loopml.services.registry.core import paging
from loopml.services.registry.core._base import RegistryBase
from loopml.services.registry.core.model import (
    EventType,
    Model,
    utcnow,
    validate_model_name,
)
from loopml.services.registry.core.rows import (
    aliases_of,
    append_event,
    find_model,
    model_of,
)
from loopml.services.registry.storage import AliasHistoryRow, AliasRow, ModelRow, ModelTagRow, VersionRow

_MODEL_ORDERS = {
    "name": ModelRow.name,
    "create_time": ModelRow.create_time,
    "update_time": ModelRow.update_time,
}


class ModelOperations(RegistryBase):
    """Use cases on models."""

    # -- models ------------------------------------------------------------------------------

    def create_model(
        self, name: str, description: str = "", tags: dict[str, str] | None = None, *, actor: str = ""
    ) -> Model:
        validate_model_name(name)
        tags = dict(tags or {})
        for key in tags:
            if not key:
                raise InvalidArgument("tags", "tag keys must not be empty")

        def work(session: Session) -> Model:
            now = utcnow()
            row = ModelRow(
                name=name,
                description=description,
                tags=tags,
                created_by=actor,
                create_time=now,
                update_time=now,
                latest_version=0,
            )
            session.add(row)
            session.flush()
            session.add_all(ModelTagRow(model_id=row.id, key=k, value=v) for k, v in tags.items())
            model = model_of(row, {})
            append_event(session, EventType.MODEL_CREATED, name, detail=model)
            return model

        with map_unique_violation("model", name):
            return self._write(work)

    def get_model(self, name: str) -> Model:
        validate_model_name(name)
        with self.database.session() as session:
            row = find_model(session, name)
            return model_of(row, aliases_of(session, [row.id])[row.id])

    def list_models(
        self,
        *,
        name_prefix: str = "",
        tags: dict[str, str] | None = None,
        order_by: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> tuple[list[Model], str]:
        size = paging.page_size(page_size)
        offset = paging.decode(page_token)
        column, descending = self._model_order(order_by)
        query = select(ModelRow)
        if name_prefix:
            query = query.where(ModelRow.name.startswith(name_prefix, autoescape=True))
        for key, value in (tags or {}).items():
            query = query.where(
                exists().where(
                    and_(
                        ModelTagRow.model_id == ModelRow.id,
                        ModelTagRow.key == key,
                        ModelTagRow.value == value,
                    )
                )
            )
        query = query.order_by(desc(column) if descending else column, ModelRow.id)
        with self.database.session() as session:
            rows = list(session.scalars(query.offset(offset).limit(size + 1)))
            aliases = aliases_of(session, [r.id for r in rows[:size]])
            models = [model_of(r, aliases[r.id]) for r in rows[:size]]
        return models, paging.next_token(offset, size, len(rows))

    @staticmethod
    def _model_order(order_by: str):
        parts = order_by.strip().split()
        if not parts:
            return ModelRow.name, False
        if (
            parts[0] not in _MODEL_ORDERS
            or len(parts) > 2
            or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc"))
        ):
            raise InvalidArgument(
                "order_by",
                f"{order_by!r}: expected one of {', '.join(_MODEL_ORDERS)}, optionally followed by ' desc'",
            )
        return _MODEL_ORDERS[parts[0]], len(parts) == 2 and parts[1].lower() == "desc"

    def delete_model(self, name: str, *, force: bool = False, actor: str = "") -> None:
        validate_model_name(name)

        def work(session: Session) -> list[str]:
            row = find_model(session, name, lock=True)
            keys = [
                k
                for k in session.scalars(select(VersionRow.artifact_key).where(VersionRow.model_id == row.id))
            ]
            if keys and not force:
                raise FailedPrecondition(
                    f"model {name!r} has {len(keys)} version(s); delete them first or use force",
                    subject=f"model/{name}",
                    violation_type="HAS_VERSIONS",
                )
            model = model_of(row, aliases_of(session, [row.id])[row.id])
            for table in (AliasRow, AliasHistoryRow, ModelTagRow, VersionRow):
                session.execute(delete(table).where(table.model_id == row.id))
            session.delete(row)
            append_event(session, EventType.MODEL_DELETED, name, detail=model)
            return [k for k in keys if k]

        for key in self._write(work):
            self._delete_object_if_unreferenced(key)
