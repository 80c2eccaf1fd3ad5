"""registration retried while the registry is unavailable

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
    with op.batch_alter_table("trainer_searches") as batch:
        batch.add_column(
            sa.Column("registration_pending", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.create_index("ix_trainer_searches_registration_pending", ["registration_pending"])


def downgrade() -> None:
    with op.batch_alter_table("trainer_searches") as batch:
        batch.drop_index("ix_trainer_searches_registration_pending")
        batch.drop_column("registration_pending")
