"""SQLAlchemy tables of the dataset service (prefixed `dataset_`) and the repository over them.

Versions carry their schema, task inference and profile as JSON text: they are written once with
the version (roles and label warnings are rewritten by UpdateColumnRoles) and always read whole.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


def utcnow() -> datetime:
    return datetime.now(UTC)


class DatasetRow(Base):
    __tablename__ = "dataset_datasets"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(128), unique=True, nullable=False)
    description: Mapped[str] = mapped_column(sa.Text, default="")
    created_by: Mapped[str] = mapped_column(sa.String(256), default="")
    create_time: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    update_time: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)


class TagRow(Base):
    __tablename__ = "dataset_tags"

    dataset_id: Mapped[str] = mapped_column(
        sa.ForeignKey("dataset_datasets.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(sa.String(256), primary_key=True)
    value: Mapped[str] = mapped_column(sa.Text, default="")


class VersionRow(Base):
    __tablename__ = "dataset_versions"
    __table_args__ = (
        sa.UniqueConstraint("dataset_id", "version", name="uq_dataset_versions_number"),
        sa.UniqueConstraint("dataset_id", "sha256", name="uq_dataset_versions_sha256"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(
        sa.ForeignKey("dataset_datasets.id", ondelete="CASCADE"), nullable=False
    )
    version: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    source: Mapped[str] = mapped_column(sa.String(16))
    filename: Mapped[str] = mapped_column(sa.Text, default="")
    format: Mapped[str] = mapped_column(sa.String(16))
    compression: Mapped[str] = mapped_column(sa.String(16))
    original_key: Mapped[str] = mapped_column(sa.Text)
    original_uri: Mapped[str] = mapped_column(sa.Text)
    canonical_key: Mapped[str] = mapped_column(sa.Text)
    canonical_uri: Mapped[str] = mapped_column(sa.Text)
    key_prefix: Mapped[str] = mapped_column(sa.Text)
    sha256: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    row_count: Mapped[int] = mapped_column(sa.BigInteger)
    columns_json: Mapped[str] = mapped_column(sa.Text)
    task_json: Mapped[str] = mapped_column(sa.Text, default="")
    profile_json: Mapped[str] = mapped_column(sa.Text)
    created_by: Mapped[str] = mapped_column(sa.String(256), default="")
    create_time: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)


class SplitRow(Base):
    __tablename__ = "dataset_splits"
    __table_args__ = (
        sa.UniqueConstraint("version_id", "spec_json", name="uq_dataset_splits_spec"),
        sa.UniqueConstraint("version_id", "name", name="uq_dataset_splits_name"),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    version_id: Mapped[int] = mapped_column(
        sa.ForeignKey("dataset_versions.id", ondelete="CASCADE"), nullable=False
    )
    name: Mapped[str | None] = mapped_column(sa.String(128), nullable=True)
    spec_json: Mapped[str] = mapped_column(sa.String(1024))
    train_rows: Mapped[int] = mapped_column(sa.BigInteger)
    validation_rows: Mapped[int] = mapped_column(sa.BigInteger)
    test_rows: Mapped[int] = mapped_column(sa.BigInteger)
    key: Mapped[str] = mapped_column(sa.Text)
    create_time: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    #: {part: profile} of the three parts; NULL for splits created before they were stored.
    profiles_json: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
