"""registry tables: models, versions, aliases, alias history, events

Revision ID: 0001
Revises:
Create Date: 2026-11-27 21:12:36.850154
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registry_event_counter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    counter = sa.table(
        "registry_event_counter", sa.column("id", sa.Integer()), sa.column("last_sequence", sa.BigInteger())
    )
    op.bulk_insert(counter, [{"id": 1, "last_sequence": 0}])
    op.create_table(
        "registry_events",
        sa.Column("sequence", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_name", sa.String(length=128), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("sequence"),
    )
    with op.batch_alter_table("registry_events", schema=None) as batch_op:
        batch_op.create_index("ix_registry_events_model", ["model_name", "sequence"], unique=False)

    op.create_table(
        "registry_models",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("latest_version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "registry_alias_history",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("model_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("previous_version", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("changed_by", sa.String(length=256), nullable=False),
        sa.Column("change_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["registry_models.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("registry_alias_history", schema=None) as batch_op:
        batch_op.create_index("ix_registry_alias_history_model_alias", ["model_id", "alias"], unique=False)

    op.create_table(
        "registry_aliases",
        sa.Column("model_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["registry_models.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("model_id", "alias"),
    )
    op.create_table(
        "registry_model_tags",
        sa.Column("model_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("value", sa.String(length=1024), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["registry_models.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("model_id", "key"),
    )
    op.create_table(
        "registry_model_versions",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("model_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_message", sa.Text(), nullable=False),
        sa.Column("artifact_key", sa.String(length=1024), nullable=False),
        sa.Column("artifact_uri", sa.String(length=2048), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("flavor", sa.String(length=32), nullable=False),
        sa.Column("signature", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("lineage", sa.JSON(), nullable=False),
        sa.Column("lineage_dataset_id", sa.String(length=256), nullable=False),
        sa.Column("lineage_dataset_version", sa.BigInteger(), nullable=False),
        sa.Column("lineage_search_id", sa.String(length=256), nullable=False),
        sa.Column("feature_importances", sa.JSON(), nullable=False),
        sa.Column("requirements", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("request_id", sa.String(length=256), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["registry_models.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model_id", "version", name="uq_registry_model_versions_model_version"),
    )
    with op.batch_alter_table("registry_model_versions", schema=None) as batch_op:
        batch_op.create_index("ix_registry_model_versions_artifact_key", ["artifact_key"], unique=False)
        batch_op.create_index(
            "ix_registry_model_versions_lineage_dataset",
            ["lineage_dataset_id", "lineage_dataset_version"],
            unique=False,
        )
        batch_op.create_index(
            "ix_registry_model_versions_lineage_search", ["lineage_search_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("registry_model_versions", schema=None) as batch_op:
        batch_op.drop_index("ix_registry_model_versions_lineage_search")
        batch_op.drop_index("ix_registry_model_versions_lineage_dataset")
        batch_op.drop_index("ix_registry_model_versions_artifact_key")

    op.drop_table("registry_model_versions")
    op.drop_table("registry_model_tags")
    op.drop_table("registry_aliases")
    with op.batch_alter_table("registry_alias_history", schema=None) as batch_op:
        batch_op.drop_index("ix_registry_alias_history_model_alias")

    op.drop_table("registry_alias_history")
    op.drop_table("registry_models")
    with op.batch_alter_table("registry_events", schema=None) as batch_op:
        batch_op.drop_index("ix_registry_events_model")

    op.drop_table("registry_events")
    op.drop_table("registry_event_counter")
