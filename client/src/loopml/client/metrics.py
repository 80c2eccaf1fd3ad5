"""MetricsClient: record metrics, predictions and feedback; query series, performance, drift, alerts."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from loopml.client.base import ServiceClient
from loopml.metrics.v1 import alerts_pb2, metrics_pb2, metrics_service_pb2_grpc
from loopml.metrics.v1 import metrics_service_pb2 as pb

AGGREGATIONS = {
    "sum": metrics_pb2.AGGREGATION_SUM,
    "avg": metrics_pb2.AGGREGATION_AVG,
    "min": metrics_pb2.AGGREGATION_MIN,
    "max": metrics_pb2.AGGREGATION_MAX,
    "count": metrics_pb2.AGGREGATION_COUNT,
    "rate": metrics_pb2.AGGREGATION_RATE,
    "quantile": metrics_pb2.AGGREGATION_QUANTILE,
}


def timestamp(seconds: float) -> Timestamp:
    t = Timestamp()
    t.FromNanoseconds(int(seconds * 1e9))
    return t


def duration(seconds: float) -> Duration:
    d = Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


def parse_matcher(text: str) -> metrics_pb2.LabelMatcher:
    """ "label=value", "label!=value", "label=~regex" or "label!~regex"."""
    for token, op in (
        ("=~", metrics_pb2.MATCH_OPERATOR_REGEX),
        ("!~", metrics_pb2.MATCH_OPERATOR_NOT_REGEX),
        ("!=", metrics_pb2.MATCH_OPERATOR_NOT_EQUAL),
        ("=", metrics_pb2.MATCH_OPERATOR_EQUAL),
    ):
        if token in text:
            label, _, value = text.partition(token)
            return metrics_pb2.LabelMatcher(label=label, operator=op, value=value)
    raise ValueError(f"matcher {text!r} is not label=value, label!=value, label=~re or label!~re")


class MetricsClient(ServiceClient):
    service = "metrics"
    stub_class = metrics_service_pb2_grpc.MetricsServiceStub
    full_name = "loopml.metrics.v1.MetricsService"

    # -- ingest ---------------------------------------------------------------------------
    def record_metrics(self, points: Iterable[tuple[str, Mapping[str, str], float, float | None]]) -> int:
        """Points as (name, labels, value, time or None); returns the number stored."""
        msgs = []
        for name, labels, value, at in points:
            p = metrics_pb2.MetricPoint(name=name, labels=dict(labels), value=value)
            if at is not None:
                p.time.CopyFrom(timestamp(at))
            msgs.append(p)
        return self.call("RecordMetrics", pb.RecordMetricsRequest(points=msgs)).accepted_count

    def record_predictions(
        self, records: Iterable[metrics_pb2.PredictionRecord]
    ) -> pb.RecordPredictionsResponse:
        return self.call("RecordPredictions", pb.RecordPredictionsRequest(records=list(records)))

    def record_feedback(self, feedback: Iterable[metrics_pb2.Feedback]) -> pb.RecordFeedbackResponse:
        return self.call("RecordFeedback", pb.RecordFeedbackRequest(feedback=list(feedback)))

    # -- queries --------------------------------------------------------------------------
    def query(
        self,
        name: str,
        *,
        start: float | None = None,
        end: float | None = None,
        step_s: float = 60.0,
        aggregation: str = "avg",
        quantile: float = 0.0,
        matchers: Iterable[str] = (),
        group_by: Iterable[str] = (),
        page_size: int = 0,
    ) -> list[metrics_pb2.Series]:
        """Every series (all pages) of `name` between `start` and `end` (default: the last hour)."""
        end = time.time() if end is None else end
        start = end - 3600 if start is None else start
        request = pb.QueryMetricsRequest(
            name=name,
            start_time=timestamp(start),
            end_time=timestamp(end),
            step=duration(step_s),
            aggregation=AGGREGATIONS[aggregation],
            quantile=quantile,
            matchers=[parse_matcher(m) for m in matchers],
            group_by=list(group_by),
            page_size=page_size,
        )
        out: list[metrics_pb2.Series] = []
        while True:
            response = self.call("QueryMetrics", request)
            out.extend(response.series)
            if not response.next_page_token:
                return out
            request.page_token = response.next_page_token

    def performance(
        self, model_name: str, version: int = 0, *, window_s: float = 86400.0, end: float | None = None
    ) -> pb.GetModelPerformanceResponse:
        end = time.time() if end is None else end
        return self.call(
            "GetModelPerformance",
            pb.GetModelPerformanceRequest(
                model_name=model_name,
                model_version=version,
                start_time=timestamp(end - window_s),
                end_time=timestamp(end),
            ),
        )

    def drift(
        self,
        model_name: str,
        version: int = 0,
        *,
        window_s: float = 86400.0,
        end: float | None = None,
        features: Iterable[str] = (),
        thresholds: metrics_pb2.DriftThresholds | None = None,
    ) -> metrics_pb2.DriftReport:
        end = time.time() if end is None else end
        request = pb.GetDriftReportRequest(
            model_name=model_name,
            model_version=version,
            start_time=timestamp(end - window_s),
            end_time=timestamp(end),
            features=list(features),
        )
        if thresholds is not None:
            request.thresholds.CopyFrom(thresholds)
        return self.call("GetDriftReport", request).report

    # -- custom metrics and alerts ----------------------------------------------------------
    def create_custom_metric(self, metric: metrics_pb2.CustomMetric) -> metrics_pb2.CustomMetric:
        return self.call(
            "CreateCustomMetric", pb.CreateCustomMetricRequest(custom_metric=metric)
        ).custom_metric

    def list_custom_metrics(self, model_name: str = "") -> list[metrics_pb2.CustomMetric]:
        return _all_pages(
            lambda token: self.call(
                "ListCustomMetrics", pb.ListCustomMetricsRequest(model_name=model_name, page_token=token)
            ),
            "custom_metrics",
        )

    def delete_custom_metric(self, name: str) -> None:
        self.call("DeleteCustomMetric", pb.DeleteCustomMetricRequest(name=name))

    def create_alert_rule(self, rule: alerts_pb2.AlertRule) -> alerts_pb2.AlertRule:
        return self.call("CreateAlertRule", pb.CreateAlertRuleRequest(rule=rule)).rule

    def list_alert_rules(self, model_name: str = "") -> list[alerts_pb2.AlertRule]:
        return _all_pages(
            lambda token: self.call(
                "ListAlertRules", pb.ListAlertRulesRequest(model_name=model_name, page_token=token)
            ),
            "rules",
        )

    def delete_alert_rule(self, rule_id: str) -> None:
        self.call("DeleteAlertRule", pb.DeleteAlertRuleRequest(rule_id=rule_id))

    def list_alerts(
        self, rule_id: str = "", states: Iterable[int] = (), limit: int = 50
    ) -> list[alerts_pb2.Alert]:
        return list(
            self.call(
                "ListAlerts", pb.ListAlertsRequest(rule_id=rule_id, states=list(states), page_size=limit)
            ).alerts
        )


def _all_pages(fetch, field: str) -> list:
    out, token = [], ""
    while True:
        response = fetch(token)
        out.extend(getattr(response, field))
        token = response.next_page_token
        if not token:
            return out
