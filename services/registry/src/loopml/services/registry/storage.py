"""The registry's tables (all prefixed `registry_`). Alembic scripts in migrations/ create them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments INTEGER PRIMARY KEY columns.
_BIGID = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class ModelRow(Base):
    """One model. `latest_version` is the per-model counter: the transaction that creates a
    version locks this row and bumps it, so numbers are gap-free and never reused."""

    __tablename__ = "registry_models"

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    tags: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)
    created_by: Mapped[str] = mapped_column(String(256), default="", nullable=False)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    update_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    latest_version: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)


class ModelTagRow(Base):
    """Model tags again, one row each, so ListModels can filter on them in SQL."""

    __tablename__ = "registry_model_tags"

    model_id: Mapped[int] = mapped_column(
        ForeignKey("registry_models.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    value: Mapped[str] = mapped_column(String(1024), nullable=False)


class VersionRow(Base):
    __tablename__ = "registry_model_versions"
    __table_args__ = (
        UniqueConstraint("model_id", "version", name="uq_registry_model_versions_model_version"),
        Index("ix_registry_model_versions_lineage_dataset", "lineage_dataset_id", "lineage_dataset_version"),
        Index("ix_registry_model_versions_lineage_search", "lineage_search_id"),
        Index("ix_registry_model_versions_artifact_key", "artifact_key"),
    )

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(
        ForeignKey("registry_models.id", ondelete="CASCADE"), nullable=False
    )
    version: Mapped[int] = mapped_column(BigInteger, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    status_message: Mapped[str] = mapped_column(Text, default="", nullable=False)
    artifact_key: Mapped[str] = mapped_column(String(1024), default="", nullable=False)
    artifact_uri: Mapped[str] = mapped_column(String(2048), default="", nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), default="", nullable=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    flavor: Mapped[str] = mapped_column(String(32), default="UNSPECIFIED", nullable=False)
    signature: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)
    metrics: Mapped[list] = mapped_column(JSON, default=list, nullable=False)
    params: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)
    lineage: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)
    lineage_dataset_id: Mapped[str] = mapped_column(String(256), default="", nullable=False)
    lineage_dataset_version: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    lineage_search_id: Mapped[str] = mapped_column(String(256), default="", nullable=False)
    feature_importances: Mapped[list] = mapped_column(JSON, default=list, nullable=False)
    requirements: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)
    tags: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    request_id: Mapped[str] = mapped_column(String(256), default="", nullable=False)
    created_by: Mapped[str] = mapped_column(String(256), default="", nullable=False)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    update_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class AliasRow(Base):
    __tablename__ = "registry_aliases"

    model_id: Mapped[int] = mapped_column(
        ForeignKey("registry_models.id", ondelete="CASCADE"), primary_key=True
    )
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False)


class AliasHistoryRow(Base):
    __tablename__ = "registry_alias_history"
    __table_args__ = (Index("ix_registry_alias_history_model_alias", "model_id", "alias"),)

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(
        ForeignKey("registry_models.id", ondelete="CASCADE"), nullable=False
    )
    alias: Mapped[str] = mapped_column(String(64), nullable=False)
    previous_version: Mapped[int] = mapped_column(BigInteger, nullable=False)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False)
    changed_by: Mapped[str] = mapped_column(String(256), default="", nullable=False)
    change_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    reason: Mapped[str] = mapped_column(Text, default="", nullable=False)


class EventCounterRow(Base):
    """One row holding the last event sequence number. Every writing transaction locks it last,
    so events commit in sequence order and a watcher reading `sequence > n` never skips one."""

    __tablename__ = "registry_event_counter"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_sequence: Mapped[int] = mapped_column(BigInteger, nullable=False)


class EventRow(Base):
    __tablename__ = "registry_events"
    __table_args__ = (Index("ix_registry_events_model", "model_name", "sequence"),)

    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    type: Mapped[str] = mapped_column(String(32), nullable=False)
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    model_name: Mapped[str] = mapped_column(String(128), nullable=False)
    version: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    #: {"model_version": {...}} | {"alias_change": {...}} | {"model": {...}} (see core.model.to_record)
    detail: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)
