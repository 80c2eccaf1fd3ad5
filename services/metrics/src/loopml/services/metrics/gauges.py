"""Model-quality and drift gauges on the service's Prometheus /metrics endpoint (served by the
runtime when LOOPML_PROMETHEUS_ADDRESS is set). Set from every performance / drift computation
and refreshed by the server's gauge loop."""

from __future__ import annotations

from prometheus_client import Gauge

from loopml.services.metrics.core import drift
from loopml.services.metrics.core.model import ModelPerformance

ONLINE_METRIC = Gauge(
    "loopml_model_online_metric",
    "Online model metric from predictions joined with feedback.",
    ["model", "version", "metric"],
)
TRAINING_METRIC = Gauge(
    "loopml_model_training_metric",
    "Model metric recorded at training (registry).",
    ["model", "version", "metric", "evaluation_set"],
)
COVERAGE = Gauge(
    "loopml_model_feedback_coverage", "Share of predicted rows that received feedback.", ["model", "version"]
)
PREDICTED_ROWS = Gauge(
    "loopml_model_predicted_rows", "Predicted rows in the performance window.", ["model", "version"]
)
DRIFT_PSI = Gauge(
    "loopml_model_drift_psi",
    "Population stability index of a feature vs the training reference.",
    ["model", "version", "feature"],
)
DRIFT_KS = Gauge(
    "loopml_model_drift_ks",
    "Kolmogorov-Smirnov statistic of a numeric feature vs the reference.",
    ["model", "version", "feature"],
)
DRIFT_SEVERITY = Gauge(
    "loopml_model_drift_severity",
    "Worst drift severity (0 unknown, 1 none, 2 warning, 3 drift).",
    ["model", "version"],
)
ALERT_VALUE = Gauge(
    "loopml_alert_rule_value", "Watched value of an alert rule at its last evaluation.", ["rule"]
)


def publish_performance(p: ModelPerformance) -> None:
    for v in p.versions:
        labels = (p.model_name, str(v.version))
        COVERAGE.labels(*labels).set(v.coverage)
        PREDICTED_ROWS.labels(*labels).set(v.prediction_count)
        for s in v.online:
            ONLINE_METRIC.labels(*labels, s.metric).set(s.value)
        for s in v.training:
            TRAINING_METRIC.labels(*labels, s.metric, s.evaluation_set).set(s.value)


def publish_drift(r: drift.DriftReport) -> None:
    labels = (r.model_name, str(r.model_version))
    for f in r.features + ([r.prediction] if r.prediction else []):
        DRIFT_PSI.labels(*labels, f.feature).set(f.psi)
        if f.ks is not None:
            DRIFT_KS.labels(*labels, f.feature).set(f.ks)
    DRIFT_SEVERITY.labels(*labels).set(drift.SEVERITY_ORDER.index(r.severity))


def publish_alert_value(rule, value: float) -> None:
    ALERT_VALUE.labels(rule.name).set(value)
