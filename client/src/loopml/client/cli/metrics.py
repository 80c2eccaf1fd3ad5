"""`loopml metrics query|performance|drift|alerts`: tables, and a sparkline for each series."""

from __future__ import annotations

import math
import time

import typer
from google.protobuf.json_format import MessageToDict

from loopml.client.cli.output import console, emit, table
from loopml.client.metrics import MetricsClient
from loopml.common.v1 import metric_pb2
from loopml.metrics.v1 import alerts_pb2, metrics_pb2

app = typer.Typer(help="Serving and model metrics, drift and alerts.", no_args_is_help=True)
BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float]) -> str:
    """One character per value, scaled between the series' min and max."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return ""
    lo, hi = min(finite), max(finite)
    span = hi - lo or 1.0
    return "".join(BARS[int((v - lo) / span * (len(BARS) - 1))] if math.isfinite(v) else " " for v in values)


def _dict(message) -> dict:
    return MessageToDict(message, preserving_proto_field_name=True)


@app.command()
def query(
    ctx: typer.Context,
    name: str,
    since: float = typer.Option(3600, help="Seconds back from now."),
    step: float = typer.Option(60, help="Step width in seconds."),
    agg: str = typer.Option("avg", help="sum, avg, min, max, count, rate or quantile."),
    quantile: float = typer.Option(0.0, help="For --agg quantile."),
    match: list[str] = typer.Option([], "--match", "-m", help="label=value, label!=v, label=~re, label!~re."),
    group_by: list[str] = typer.Option([], "--by", help="Labels to group by."),
):
    """A metric's series over time, with a sparkline each."""
    end = time.time()
    with MetricsClient() as client:
        series = client.query(
            name,
            start=end - since,
            end=end,
            step_s=step,
            aggregation=agg,
            quantile=quantile,
            matchers=match,
            group_by=group_by,
        )

    def render():
        rows = []
        for s in series:
            values = [x.value for x in s.samples]
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())) or "-"
            rows.append(
                (
                    labels,
                    len(values),
                    f"{min(values):.4g}",
                    f"{max(values):.4g}",
                    f"{values[-1]:.4g}",
                    sparkline(values),
                )
            )
        table(f"{name} ({agg}, step {step:g}s)", ["series", "samples", "min", "max", "last", "trend"], rows)

    emit(ctx, [_dict(s) for s in series], render)


@app.command()
def performance(
    ctx: typer.Context,
    model: str,
    version: int = typer.Option(0, help="0: every version."),
    window: float = typer.Option(86400, help="Window in seconds."),
):
    """Online metrics per version, next to the metrics recorded at training."""
    with MetricsClient() as client:
        perf = client.performance(model, version, window_s=window)

    def render():
        rows = []
        for v in perf.versions:
            training = {(s.metric): s.value for s in v.training_metrics}
            for s in v.online_metrics:
                name = metric_pb2.MetricName.Name(s.metric).removeprefix("METRIC_NAME_").lower()
                rows.append(
                    (
                        v.model_version,
                        name,
                        f"{s.value:.4f}",
                        f"{training[s.metric]:.4f}" if s.metric in training else "-",
                        v.prediction_count,
                        v.feedback_count,
                        f"{v.coverage:.1%}",
                    )
                )
            if not v.online_metrics:
                rows.append(
                    (
                        v.model_version,
                        "(no feedback yet)",
                        "-",
                        "-",
                        v.prediction_count,
                        v.feedback_count,
                        f"{v.coverage:.1%}",
                    )
                )
        table(
            f"{model}: online performance",
            ["version", "metric", "online", "training", "predicted rows", "with feedback", "coverage"],
            rows,
        )
        for v in perf.versions:
            if v.training_metrics_note:
                console.print(f"v{v.model_version}: {v.training_metrics_note}")

    emit(ctx, _dict(perf), render)


@app.command()
def drift(
    ctx: typer.Context,
    model: str,
    version: int = typer.Option(0, help="0: the production alias."),
    window: float = typer.Option(86400, help="Live window in seconds."),
    feature: list[str] = typer.Option([], "--feature", "-f", help="Only these features."),
):
    """PSI and KS per feature against the training reference, most drifted first."""
    with MetricsClient() as client:
        report = client.drift(model, version, window_s=window, features=feature)

    def render():
        severity = lambda s: metrics_pb2.DriftSeverity.Name(s).removeprefix("DRIFT_SEVERITY_").lower()  # noqa: E731
        rows = [
            (
                f.rank,
                f.feature,
                f"{f.psi:.4f}",
                f"{f.ks_statistic:.3f}" if f.HasField("ks_statistic") else "-",
                severity(f.severity),
                sparkline([b.live_fraction - b.reference_fraction for b in f.bins]),
            )
            for f in report.features
        ]
        if report.HasField("prediction_drift"):
            p = report.prediction_drift
            rows.append(("-", "prediction", f"{p.psi:.4f}", "-", severity(p.severity), ""))
        table(
            f"{model} v{report.model_version}: drift over {report.live_row_count} live rows "
            f"vs {report.reference_row_count} training rows ({severity(report.severity)})",
            ["rank", "feature", "PSI", "KS", "severity", "live - reference by bin"],
            rows,
        )

    emit(ctx, _dict(report), render)


@app.command()
def alerts(
    ctx: typer.Context,
    rule: str = typer.Option("", help="Only alerts of this rule id."),
    limit: int = typer.Option(50),
):
    """Alert rules with their state, and the latest alerts with their actions."""
    with MetricsClient() as client:
        rules = client.list_alert_rules()
        items = client.list_alerts(rule_id=rule, limit=limit)

    def state(s):
        return alerts_pb2.AlertState.Name(s).removeprefix("ALERT_STATE_").lower()

    def render():
        table(
            "alert rules",
            ["rule id", "name", "state", "threshold"],
            [(r.rule_id, r.name, state(r.state), r.threshold) for r in rules],
        )
        table(
            "alerts (newest first)",
            ["rule", "state", "value", "pending", "firing", "resolved", "actions"],
            [
                (
                    a.rule_name,
                    state(a.state),
                    f"{a.value:.4g}",
                    a.pending_time.ToJsonString(),
                    a.firing_time.ToJsonString() if a.HasField("firing_time") else "",
                    a.resolved_time.ToJsonString() if a.HasField("resolved_time") else "",
                    "; ".join(
                        f"{alerts_pb2.AlertActionKind.Name(r.kind).removeprefix('ALERT_ACTION_KIND_').lower()}:"
                        f"{alerts_pb2.ActionStatus.Name(r.status).removeprefix('ACTION_STATUS_').lower()}"
                        for r in a.action_results
                    ),
                )
                for a in items
            ],
        )

    emit(ctx, {"rules": [_dict(r) for r in rules], "alerts": [_dict(a) for a in items]}, render)
