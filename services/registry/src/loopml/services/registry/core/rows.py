"""Table rows to domain objects, locking helpers and the event log writer (inside a session)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from loopml.runtime.errors import NotFound
from loopml.services.registry.core.model import (
    AliasChange,
    Event,
    EventType,
    Model,
    ModelVersion,
    VersionStatus,
    from_record,
    to_record,
    utcnow,
)
from loopml.services.registry.storage import (
    AliasHistoryRow,
    AliasRow,
    EventCounterRow,
    EventRow,
    ModelRow,
    VersionRow,
)


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def find_model(session: Session, name: str, *, lock: bool = False) -> ModelRow:
    """The model row, locked FOR UPDATE when `lock` (PostgreSQL; SQLite's BEGIN IMMEDIATE
    already serialises writers); NotFound otherwise."""
    query = select(ModelRow).where(ModelRow.name == name)
    if lock:
        query = query.with_for_update()
    row = session.scalars(query).one_or_none()
    if row is None:
        raise NotFound("model", name)
    return row


def aliases_of(session: Session, model_ids: list[int]) -> dict[int, dict[str, int]]:
    result: dict[int, dict[str, int]] = defaultdict(dict)
    if model_ids:
        for row in session.scalars(select(AliasRow).where(AliasRow.model_id.in_(model_ids))):
            result[row.model_id][row.alias] = row.version
    return result


def model_of(row: ModelRow, aliases: dict[str, int]) -> Model:
    return Model(
        name=row.name,
        description=row.description,
        tags=dict(row.tags or {}),
        create_time=aware(row.create_time),
        update_time=aware(row.update_time),
        latest_version=row.latest_version,
        aliases=dict(aliases),
        created_by=row.created_by,
    )


def version_of(row: VersionRow, model_name: str, aliases: dict[str, int]) -> ModelVersion:
    return ModelVersion(
        model_name=model_name,
        version=row.version,
        status=VersionStatus(row.status),
        status_message=row.status_message,
        artifact_uri=row.artifact_uri,
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        flavor=row.flavor,
        signature=dict(row.signature or {}),
        metrics=list(row.metrics or []),
        params=dict(row.params or {}),
        lineage=dict(row.lineage or {}),
        feature_importances=list(row.feature_importances or []),
        requirements=dict(row.requirements or {}),
        tags=dict(row.tags or {}),
        description=row.description,
        aliases=sorted(a for a, v in aliases.items() if v == row.version),
        create_time=aware(row.create_time),
        update_time=aware(row.update_time),
        created_by=row.created_by,
    )


def change_of(row: AliasHistoryRow, model_name: str) -> AliasChange:
    return AliasChange(
        model_name=model_name,
        alias=row.alias,
        previous_version=row.previous_version,
        version=row.version,
        changed_by=row.changed_by,
        change_time=aware(row.change_time),
        reason=row.reason,
    )


def append_event(
    session: Session, type_: EventType, model_name: str, version: int = 0, *, detail=None
) -> None:
    """Add an event in the caller's transaction. Call it last: it locks the counter row, which
    serialises writers from here to commit, so sequence numbers commit in order."""
    counter = session.scalars(select(EventCounterRow).where(EventCounterRow.id == 1).with_for_update()).one()
    counter.last_sequence += 1
    key = {Model: "model", ModelVersion: "model_version", AliasChange: "alias_change"}.get(type(detail))
    session.add(
        EventRow(
            sequence=counter.last_sequence,
            type=type_.value,
            event_time=utcnow(),
            model_name=model_name,
            version=version,
            detail={key: to_record(detail)} if key else {},
        )
    )


def event_of(row: EventRow) -> Event:
    detail = row.detail or {}
    return Event(
        sequence=row.sequence,
        type=EventType(row.type),
        event_time=aware(row.event_time),
        model_name=row.model_name,
        version=row.version,
        model_version=from_record(ModelVersion, detail["model_version"])
        if "model_version" in detail
        else None,
        alias_change=from_record(AliasChange, detail["alias_change"]) if "alias_change" in detail else None,
        model=from_record(Model, detail["model"]) if "model" in detail else None,
    )
