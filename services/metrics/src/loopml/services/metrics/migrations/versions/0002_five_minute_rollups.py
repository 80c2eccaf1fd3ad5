"""five-minute aggregates, backfilled from the per-minute ones

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A bucket's last value is the one of its newest per-minute aggregate.
    op.execute(
        """
        INSERT INTO metrics_rollups
            (series_id, resolution, bucket, "count", "sum", "min", "max", "last", last_ts)
        SELECT m.series_id, 300, m.five, SUM(m."count"), SUM(m."sum"), MIN(m."min"), MAX(m."max"),
               (SELECT l."last" FROM metrics_rollups l
                 WHERE l.series_id = m.series_id AND l.resolution = 60
                   AND l.bucket >= m.five AND l.bucket < m.five + 300
                 ORDER BY l.last_ts DESC LIMIT 1),
               MAX(m.last_ts)
        FROM (SELECT r.*, FLOOR(r.bucket / 300) * 300 AS five FROM metrics_rollups r
              WHERE r.resolution = 60) m
        GROUP BY m.series_id, m.five
        """
    )


def downgrade() -> None:
    op.execute("DELETE FROM metrics_rollups WHERE resolution = 300")
