"""stored profiles of split parts

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # {part: profile} computed when the split is created; NULL for splits created before.
    op.add_column("dataset_splits", sa.Column("profiles_json", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dataset_splits") as batch:
        batch.drop_column("profiles_json")
