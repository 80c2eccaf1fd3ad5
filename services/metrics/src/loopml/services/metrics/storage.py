"""SQLAlchemy tables of the metrics service (all prefixed `metrics_`). Times are epoch seconds."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase

#: 64-bit ids on PostgreSQL; INTEGER on SQLite (only INTEGER PRIMARY KEY auto-increments there).
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


metadata = Base.metadata

series = sa.Table(
    "metrics_series",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    # Canonical JSON of the labels (sorted keys): the identity of the series within its name.
    sa.Column("labels_key", sa.Text, nullable=False),
    sa.UniqueConstraint("name", "labels_key", name="uq_metrics_series_name_labels"),
)

points = sa.Table(
    "metrics_points",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("series_id", BigId, nullable=False),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Index("ix_metrics_points_series_ts", "series_id", "ts"),
    sa.Index("ix_metrics_points_ts", "ts"),
)

#: Downsampled points: one row per series, resolution (60 or 3600 s) and bucket start.
rollups = sa.Table(
    "metrics_rollups",
    metadata,
    sa.Column("series_id", BigId, primary_key=True),
    sa.Column("resolution", sa.Integer, primary_key=True),
    sa.Column("bucket", sa.Float, primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("sum", sa.Float, nullable=False),
    sa.Column("min", sa.Float, nullable=False),
    sa.Column("max", sa.Float, nullable=False),
    sa.Column("last", sa.Float, nullable=False),
    sa.Column("last_ts", sa.Float, nullable=False),
    sa.Index("ix_metrics_rollups_resolution_bucket", "resolution", "bucket"),
)

predictions = sa.Table(
    "metrics_predictions",
    metadata,
    sa.Column("request_id", sa.String(200), primary_key=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.BigInteger, nullable=False),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("row_count", sa.Integer, nullable=False),
    sa.Column("latency_s", sa.Float, nullable=False, default=0.0),
    # The record as sent (opaque bytes; the API layer's codec reads it back).
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Index("ix_metrics_predictions_model_ts", "model_name", "ts"),
    sa.Index("ix_metrics_predictions_ts", "ts"),
)

feedback = sa.Table(
    "metrics_feedback",
    metadata,
    sa.Column("request_id", sa.String(200), primary_key=True),
    sa.Column("row", sa.Integer, primary_key=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.BigInteger, nullable=False),
    sa.Column("prediction_ts", sa.Float, nullable=False),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("actual", sa.Text, nullable=False),  # JSON cell
    sa.Column("business", sa.Text, nullable=False),  # JSON object
    sa.Index("ix_metrics_feedback_model_pts", "model_name", "prediction_ts"),
)

custom_metrics = sa.Table(
    "metrics_custom_metrics",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("definition", sa.Text, nullable=False),  # JSON of the CustomMetric domain value
    sa.Column("create_time", sa.Float, nullable=False),
)

alert_rules = sa.Table(
    "metrics_alert_rules",
    metadata,
    sa.Column("rule_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("definition", sa.Text, nullable=False),  # JSON of the AlertRule domain value
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("create_time", sa.Float, nullable=False),
    sa.Column("last_evaluation", sa.Float, nullable=True),
    sa.Column("last_retrain", sa.Float, nullable=True),
)

alerts = sa.Table(
    "metrics_alerts",
    metadata,
    sa.Column("alert_id", sa.String(64), primary_key=True),
    sa.Column("rule_id", sa.String(64), nullable=False),
    sa.Column("rule_name", sa.String(200), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("pending_time", sa.Float, nullable=False),
    sa.Column("firing_time", sa.Float, nullable=True),
    sa.Column("resolved_time", sa.Float, nullable=True),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("labels", sa.Text, nullable=False),
    sa.Column("action_results", sa.Text, nullable=False),  # JSON list
    sa.Index("ix_metrics_alerts_rule_state", "rule_id", "state"),
)

#: Leadership of the background jobs among replicas: one row per lease, held by `owner` until
#: `expires_at` (database clock), renewed by the holder, taken over by another once expired.
leases = sa.Table(
    "metrics_leases",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("acquired_at", sa.Float, nullable=False),
)
