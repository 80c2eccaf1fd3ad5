"""Add example_widget.color and the example_widget_tag table.

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
    op.add_column("example_widget", sa.Column("color", sa.String(20), nullable=True))
    op.create_table(
        "example_widget_tag",
        sa.Column(
            "widget_id",
            sa.Integer,
            sa.ForeignKey("example_widget.id", ondelete="CASCADE", name="fk_example_widget_tag_widget"),
            primary_key=True,
        ),
        sa.Column("tag", sa.String(50), primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("example_widget_tag")
    op.drop_column("example_widget", "color")
