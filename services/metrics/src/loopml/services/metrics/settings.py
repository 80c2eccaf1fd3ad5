"""Settings of the metrics service (environment variables LOOPML_*)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from loopml.runtime.settings import ServiceSettings


class MetricsSettings(ServiceSettings):
    service_name: ClassVar[str] = "metrics"

    listen_address: str = "127.0.0.1:50055"

    #: Days raw metric points are kept (then only the 1-minute, 5-minute and hourly aggregates remain).
    raw_retention_days: float = Field(default=7.0, gt=0)
    #: Days the 1-minute and 5-minute aggregates are kept.
    minute_retention_days: float = Field(default=30.0, gt=0)
    #: Days per-hour aggregates are kept.
    hour_retention_days: float = Field(default=400.0, gt=0)
    #: Days prediction records (and their feedback) are kept.
    prediction_retention_days: float = Field(default=30.0, gt=0)
    #: Feedback arriving more than this many seconds after its prediction is counted as expired.
    feedback_window_s: float = Field(default=7 * 86400.0, gt=0)
    #: Largest batch accepted by RecordMetrics / RecordPredictions / RecordFeedback.
    max_batch_size: int = Field(default=50_000, gt=0)
    #: Seconds between runs of the maintenance job (retention); 0 turns it off.
    maintenance_interval_s: float = Field(default=300.0, ge=0)
    #: Default seconds between evaluations of an alert rule; the evaluator loop ticks this often
    #: (or faster when a rule asks for it); 0 turns the evaluator off.
    alert_evaluation_interval_s: float = Field(default=30.0, ge=0)
    #: Seconds the replica running the alert evaluator and the maintenance job (the leader) holds
    #: its database lease without renewing it (renewed every third of it). Another replica takes
    #: over within a third of it after a clean shutdown, within 4/3 of it after a crash.
    leader_lease_s: float = Field(default=30.0, gt=0)
    #: Seconds between refreshes of the model-quality and drift Prometheus gauges; 0: off.
    gauge_refresh_interval_s: float = Field(default=60.0, ge=0)
    #: Seconds a retrain action waits for its search before recording it as failed.
    retrain_timeout_s: float = Field(default=3600.0, gt=0)
