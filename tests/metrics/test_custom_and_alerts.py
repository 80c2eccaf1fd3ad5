"""Custom metrics and alert rules: creation checks, evaluation, states, webhook and retrain actions."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from loopml.client.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
)
from loopml.common.v1 import metric_pb2, refs_pb2, value_pb2
from loopml.metrics.v1 import alerts_pb2, metrics_pb2
from loopml.runtime.errors import NotFound
from loopml.services.metrics.core.model import VersionInfo
from loopml.services.metrics.core.retrain import RetrainOutcome
from loopml.services.metrics.server import MetricsDeps
from tests.metrics.helpers import feedback, record, start

NOW = time.time()
EQ, GT = metrics_pb2.COMPARISON_OPERATOR_EQUAL, metrics_pb2.COMPARISON_OPERATOR_GREATER


def _offers(client):
    """Six offer decisions in two segments, with revenue feedback on the accepted ones."""
    decisions = [
        ("s1", "accept", 10.0),
        ("s1", "reject", 0),
        ("s1", "accept", 5.0),
        ("s2", "reject", 0),
        ("s2", "reject", 0),
        ("s2", "accept", 20.0),
    ]
    client.record_predictions(
        [
            record(
                f"o{i}",
                "offers",
                1,
                {"amount": [float(i)], "segment": [seg]},
                [d],
                at=NOW - 120,
                labels={"channel": "web"},
            )
            for i, (seg, d, _) in enumerate(decisions)
        ]
    )
    client.record_feedback([feedback(f"o{i}", 0, d, {"revenue": r}) for i, (_, d, r) in enumerate(decisions)])


def _filter(field, op, v):
    value = value_pb2.Value(string_value=v) if isinstance(v, str) else value_pb2.Value(double_value=v)
    return metrics_pb2.FieldFilter(field=field, operator=op, value=value)


def test_custom_metrics_fraction_and_sum(backend, serve):
    _, client = start(serve, backend)
    _offers(client)
    rate = client.create_custom_metric(
        metrics_pb2.CustomMetric(
            name="approval_rate",
            model_name="offers",
            aggregation=metrics_pb2.CUSTOM_AGGREGATION_FRACTION,
            numerator_filters=[_filter("prediction", EQ, "accept")],
            group_by=["input.segment"],
        )
    )
    assert rate.create_time.seconds > 0
    revenue = metrics_pb2.CustomMetric(
        name="accepted_revenue",
        model_name="offers",
        aggregation=metrics_pb2.CUSTOM_AGGREGATION_SUM,
        field="business.revenue",
        filters=[_filter("prediction", EQ, "accept")],
    )
    client.create_custom_metric(revenue)
    series = client.query("approval_rate", start=NOW - 3600, end=NOW, step_s=3600)
    assert {s.labels["input.segment"]: round(s.samples[0].value, 6) for s in series} == {
        "s1": round(2 / 3, 6),
        "s2": round(1 / 3, 6),
    }
    total = client.query("accepted_revenue", start=NOW - 3600, end=NOW, step_s=3600)
    assert [x.value for x in total[0].samples] == [35.0]
    assert [m.name for m in client.list_custom_metrics("offers")] == ["accepted_revenue", "approval_rate"]
    with pytest.raises(AlreadyExistsError):
        client.create_custom_metric(revenue)
    client.delete_custom_metric("accepted_revenue")
    with pytest.raises(NotFoundError):
        client.delete_custom_metric("accepted_revenue")
    # an alert rule on a custom metric keeps it from being deleted
    rule = client.create_alert_rule(
        _rule(
            "low-approval",
            metric=alerts_pb2.MetricTarget(name="approval_rate"),
            operator=metrics_pb2.COMPARISON_OPERATOR_LESS,
            threshold=0.1,
        )
    )
    with pytest.raises(FailedPreconditionError):
        client.delete_custom_metric("approval_rate")
    client.delete_alert_rule(rule.rule_id)
    client.delete_custom_metric("approval_rate")


def test_custom_metric_bad_definitions(backend, serve):
    _, client = start(serve, backend)
    _offers(client)
    cases = [
        (dict(field="input.no_such_column"), "custom_metric.field"),
        (dict(field="revenue"), "custom_metric.field"),
        (
            dict(field="business.revenue", filters=[_filter("input.nope", EQ, "x")]),
            "custom_metric.filters[0].field",
        ),
        (dict(field="business.revenue", group_by=["probability.maybe"]), "custom_metric.group_by[0]"),
        (dict(field=""), "custom_metric.field"),
        (dict(name="bad name", field="business.revenue"), "custom_metric.name"),
    ]
    for extra, field in cases:
        definition = dict(name="m1", model_name="offers", aggregation=metrics_pb2.CUSTOM_AGGREGATION_SUM)
        definition.update(extra)
        with pytest.raises(InvalidArgumentError) as e:
            client.create_custom_metric(metrics_pb2.CustomMetric(**definition))
        assert e.value.field_violations[0].field == field
    with pytest.raises(NotFoundError):
        client.create_custom_metric(
            metrics_pb2.CustomMetric(
                name="m2", model_name="ghost", aggregation=metrics_pb2.CUSTOM_AGGREGATION_COUNT
            )
        )
    assert client.list_custom_metrics() == []


def _rule(name, **kw):
    base = dict(name=name, operator=GT, threshold=1.0)
    base.update(kw)
    rule = alerts_pb2.AlertRule(**base)
    rule.window.FromSeconds(3600)
    return rule


def test_alert_rule_bad_definitions(backend, serve):
    _, client = start(serve, backend)
    _offers(client)
    client.record_metrics([("queue_depth", {"queue": "a"}, 5.0, NOW)])
    cases = [
        (
            _rule(
                "r",
                metric=alerts_pb2.MetricTarget(
                    name="queue_depth", matchers=[metrics_pb2.LabelMatcher(label="region", value="x")]
                ),
            ),
            "rule.metric.matchers[0].label",
        ),
        (
            _rule("r", drift=alerts_pb2.DriftTarget(model=refs_pb2.ModelRef(name="offers"), feature="nope")),
            "rule.drift.feature",
        ),
        (
            _rule(
                "r",
                metric=alerts_pb2.MetricTarget(name="queue_depth"),
                operator=metrics_pb2.COMPARISON_OPERATOR_IN,
            ),
            "rule.operator",
        ),
        (_rule("r"), "rule.target"),
        (
            _rule(
                "r",
                metric=alerts_pb2.MetricTarget(name="queue_depth"),
                actions=[alerts_pb2.AlertAction(webhook=alerts_pb2.WebhookAction(url="ftp://x"))],
            ),
            "rule.actions[0].webhook.url",
        ),
        (
            _rule(
                "r",
                metric=alerts_pb2.MetricTarget(name="queue_depth"),
                actions=[
                    alerts_pb2.AlertAction(
                        retrain=alerts_pb2.RetrainAction(model=refs_pb2.ModelRef(name="offers", version=1))
                    )
                ],
            ),
            "rule.actions[0].retrain.model",
        ),
    ]
    for rule, field in cases:
        with pytest.raises(InvalidArgumentError) as e:
            client.create_alert_rule(rule)
        assert e.value.field_violations[0].field == field
    no_window = _rule("r", metric=alerts_pb2.MetricTarget(name="queue_depth"))
    no_window.ClearField("window")
    with pytest.raises(InvalidArgumentError):
        client.create_alert_rule(no_window)
    with pytest.raises(NotFoundError):
        client.create_alert_rule(_rule("r", metric=alerts_pb2.MetricTarget(name="no_metric")))
    with pytest.raises(NotFoundError):
        client.create_alert_rule(
            _rule(
                "r",
                performance=alerts_pb2.PerformanceTarget(
                    model=refs_pb2.ModelRef(name="ghost"), metric=metric_pb2.METRIC_NAME_ACCURACY
                ),
            )
        )
    assert client.list_alert_rules() == []
    with pytest.raises(NotFoundError):
        client.list_alerts(rule_id="no-such-rule")


class _Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append((self.headers.get("X-Token"), json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def _wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not reached")


def test_metric_alert_pending_firing_resolved_with_webhook(backend, serve):
    hook = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    _Hook.received.clear()
    try:
        _, client = start(serve, backend, alert_evaluation_interval_s=0.5)
        client.record_metrics([("queue_depth", {"queue": "a"}, 50.0, time.time())])
        rule = _rule(
            "deep-queue",
            metric=alerts_pb2.MetricTarget(
                name="queue_depth",
                aggregation=metrics_pb2.AGGREGATION_MAX,
                matchers=[metrics_pb2.LabelMatcher(label="queue", value="a")],
            ),
            threshold=10.0,
            labels={"team": "ops"},
            actions=[
                alerts_pb2.AlertAction(
                    webhook=alerts_pb2.WebhookAction(
                        url=f"http://127.0.0.1:{hook.server_port}/hook", headers={"X-Token": "s3cret"}
                    )
                )
            ],
        )
        rule.for_duration.FromMilliseconds(1500)
        rule.window.FromSeconds(3)
        created = client.create_alert_rule(rule)
        assert created.rule_id and created.actions[0].webhook.headers["X-Token"] == "<redacted>"
        pending = _wait_for(lambda: client.list_alerts(created.rule_id))
        assert pending[0].state in (alerts_pb2.ALERT_STATE_PENDING, alerts_pb2.ALERT_STATE_FIRING)
        firing = _wait_for(
            lambda: [
                a for a in client.list_alerts(created.rule_id) if a.state == alerts_pb2.ALERT_STATE_FIRING
            ]
        )[0]
        assert firing.value == 50.0 and firing.labels["team"] == "ops"
        assert firing.firing_time.ToNanoseconds() - firing.pending_time.ToNanoseconds() >= 1_500_000_000
        kinds = {r.kind: r for r in firing.action_results}
        assert kinds[alerts_pb2.ALERT_ACTION_KIND_RECORD].status == alerts_pb2.ACTION_STATUS_SUCCEEDED
        assert kinds[alerts_pb2.ALERT_ACTION_KIND_WEBHOOK].detail == "HTTP 204"
        assert [r.state for r in client.list_alert_rules()] == [alerts_pb2.ALERT_STATE_FIRING]
        # the point leaves the 3 s window: the alert resolves, and the webhook hears every change
        resolved = _wait_for(
            lambda: [
                a for a in client.list_alerts(created.rule_id) if a.state == alerts_pb2.ALERT_STATE_RESOLVED
            ]
        )[0]
        assert resolved.alert_id == firing.alert_id and resolved.resolved_time.seconds > 0
        states = [body["state"] for _, body in _Hook.received]
        assert states[:3] == ["pending", "firing", "resolved"] and _Hook.received[0][0] == "s3cret"
        client.delete_alert_rule(created.rule_id)
        assert client.list_alerts(created.rule_id)  # history stays
        with pytest.raises(NotFoundError):
            client.delete_alert_rule(created.rule_id)
    finally:
        hook.shutdown()


class RecordingRetrainer:
    """A Retrainer (the core's interface) that records its requests; the real one needs the
    trainer, dataset and registry services (see docs)."""

    def __init__(self):
        self.requests = []

    def retrain(self, request):
        self.requests.append(request)
        return RetrainOutcome(
            search_id="s-new",
            new_version=2,
            metric="accuracy",
            serving_score=0.5,
            candidate_score=0.9,
            promoted=True,
            detail="promoted v2 to production",
        )


def test_performance_alert_runs_retrain_once_per_cooldown(backend, serve):
    retrainer = RecordingRetrainer()
    _, client = start(serve, backend, MetricsDeps(retrainer=retrainer), alert_evaluation_interval_s=0.5)
    client.record_predictions(
        [record(f"p{i}", "offers", 1, {"amount": [1.0]}, ["accept"]) for i in range(10)]
    )
    client.record_feedback([feedback(f"p{i}", 0, "accept" if i < 3 else "reject") for i in range(10)])
    rule = _rule(
        "low-accuracy",
        performance=alerts_pb2.PerformanceTarget(
            model=refs_pb2.ModelRef(name="offers", version=1),
            metric=metric_pb2.METRIC_NAME_ACCURACY,
            min_feedback_count=5,
        ),
        operator=metrics_pb2.COMPARISON_OPERATOR_LESS,
        threshold=0.8,
        actions=[
            alerts_pb2.AlertAction(
                retrain=alerts_pb2.RetrainAction(
                    model=refs_pb2.ModelRef(name="offers", alias="production"), min_improvement=0.01
                )
            )
        ],
    )
    rule.actions[0].retrain.cooldown.FromSeconds(3600)
    created = client.create_alert_rule(rule)

    def retrained():
        alerts = client.list_alerts(created.rule_id)
        results = [
            r for a in alerts for r in a.action_results if r.kind == alerts_pb2.ALERT_ACTION_KIND_RETRAIN
        ]
        return results if results and results[0].status == alerts_pb2.ACTION_STATUS_SUCCEEDED else None

    result = _wait_for(retrained)[0]
    assert result.retrain.promoted and result.retrain.new_version == 2 and result.retrain.search_id == "s-new"
    assert result.retrain.metric == metric_pb2.METRIC_NAME_ACCURACY
    assert client.list_alerts(created.rule_id)[0].value == pytest.approx(0.3)
    req = retrainer.requests[0]
    assert (req.model_name, req.alias, req.min_improvement) == ("offers", "production", 0.01)
    assert req.alert_id == client.list_alerts(created.rule_id)[0].alert_id


class OneVersionCatalog:
    """A registry stand-in that knows one version, offers@production; `info` is changed by the test."""

    def __init__(self, info: VersionInfo):
        self.info = info

    def version(self, model_name, version):
        return self.info

    def resolve_alias(self, model_name, alias):
        if alias != "production":
            raise NotFound("model alias", f"{model_name}@{alias}")
        return self.info

    def set_alias(self, model_name, alias, version, reason):
        raise AssertionError("no alias moves in this test")


def test_retrain_on_feedback_is_checked_at_rule_creation(local_backend, serve):
    good = VersionInfo(
        "offers", 1, "binary", ("amount",), ("accept", "reject"), "decision", search_id="s1", dataset_id="d1"
    )
    catalog = OneVersionCatalog(good)
    _, client = start(serve, local_backend, MetricsDeps(catalog=catalog, retrainer=RecordingRetrainer()))

    def rule(alias="production"):
        return _rule(
            "on-feedback",
            metric=alerts_pb2.MetricTarget(name="loopml_predicted_rows"),
            actions=[
                alerts_pb2.AlertAction(
                    retrain=alerts_pb2.RetrainAction(
                        model=refs_pb2.ModelRef(name="offers", alias=alias),
                        data=alerts_pb2.RETRAIN_DATA_PREDICTIONS_WITH_FEEDBACK,
                    )
                )
            ],
        )

    for info, alias, field in (
        (replace(good, label_column=""), "production", "rule.actions[0].retrain.data"),
        (replace(good, inputs=()), "production", "rule.actions[0].retrain.data"),
        (replace(good, search_id=""), "production", "rule.actions[0].retrain.model"),
        (good, "staging", "rule.actions[0].retrain.model"),
    ):
        catalog.info = info
        with pytest.raises(InvalidArgumentError) as e:
            client.create_alert_rule(rule(alias))
        assert e.value.field_violations[0].field == field
    catalog.info = good
    created = client.create_alert_rule(rule())
    assert created.actions[0].retrain.data == alerts_pb2.RETRAIN_DATA_PREDICTIONS_WITH_FEEDBACK
