"""gRPC adapter of the metrics service: translate, call the core, translate back."""

from __future__ import annotations

from loopml.metrics.v1 import metrics_service_pb2 as pb
from loopml.metrics.v1 import metrics_service_pb2_grpc
from loopml.runtime.errors import NotFound
from loopml.services.metrics import convert as cv
from loopml.services.metrics.core import AlertEvaluator, MetricsCore


class MetricsServiceServicer(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, core: MetricsCore, evaluator: AlertEvaluator, on_performance=None, on_drift=None):
        self.core = core
        self.evaluator = evaluator
        self.on_performance = on_performance or (lambda p: None)
        self.on_drift = on_drift or (lambda r: None)

    def RecordMetrics(self, request, context):
        return pb.RecordMetricsResponse(
            accepted_count=self.core.record_metrics([cv.point(p) for p in request.points])
        )

    def RecordPredictions(self, request, context):
        accepted, duplicates = self.core.record_predictions(
            [cv.prediction_record(r) for r in request.records]
        )
        return pb.RecordPredictionsResponse(accepted_count=accepted, duplicate_count=duplicates)

    def RecordFeedback(self, request, context):
        r = self.core.record_feedback([cv.feedback(f) for f in request.feedback])
        return pb.RecordFeedbackResponse(
            accepted_count=r.accepted,
            unknown_count=r.unknown,
            expired_count=r.expired,
            rejected_request_ids=r.rejected_request_ids,
        )

    def QueryMetrics(self, request, context):
        offset = cv.page_token(request.page_token)
        size = cv.page_size(request.page_size, 100)
        series = self.core.query(cv.query(request, self.core.clock()))
        page = series[offset : offset + size]
        more = offset + size < len(series)
        return pb.QueryMetricsResponse(
            series=[cv.to_series(s) for s in page],
            next_page_token=cv.next_token(offset + size) if more else "",
        )

    def GetModelPerformance(self, request, context):
        metrics = [cv.metric_name(m, f"metrics[{i}]") for i, m in enumerate(request.metrics)]
        perf = self.core.model_performance(
            request.model_name,
            request.model_version,
            cv.opt_ts(request, "start_time"),
            cv.opt_ts(request, "end_time"),
            metrics,
        )
        self.on_performance(perf)
        return pb.GetModelPerformanceResponse(**cv.to_performance(perf))

    def GetDriftReport(self, request, context):
        ref = request.reference_dataset
        report = self.core.drift_report(
            request.model_name,
            request.model_version,
            cv.opt_ts(request, "start_time"),
            cv.opt_ts(request, "end_time"),
            list(request.features),
            cv.thresholds(request.thresholds),
            ref.dataset_id,
            ref.version,
            request.reference_split_id,
        )
        self.on_drift(report)
        return pb.GetDriftReportResponse(report=cv.to_drift_report(report))

    def CreateCustomMetric(self, request, context):
        metric = self.core.create_custom_metric(cv.custom_metric(request.custom_metric))
        return pb.CreateCustomMetricResponse(custom_metric=cv.to_custom_metric(metric))

    def ListCustomMetrics(self, request, context):
        offset = cv.page_token(request.page_token)
        size = cv.page_size(request.page_size, 50)
        items = self.core.rules.custom_metrics(request.model_name, offset, size + 1)
        return pb.ListCustomMetricsResponse(
            custom_metrics=[cv.to_custom_metric(m) for m in items[:size]],
            next_page_token=cv.next_token(offset + size) if len(items) > size else "",
        )

    def DeleteCustomMetric(self, request, context):
        self.core.rules.delete_custom_metric(request.name)
        return pb.DeleteCustomMetricResponse()

    def CreateAlertRule(self, request, context):
        rule = self.evaluator.create_rule(cv.alert_rule(request.rule))
        return pb.CreateAlertRuleResponse(rule=cv.to_alert_rule(rule))

    def ListAlertRules(self, request, context):
        offset = cv.page_token(request.page_token)
        size = cv.page_size(request.page_size, 50)
        items = self.core.rules.rules(request.model_name, offset, size + 1)
        return pb.ListAlertRulesResponse(
            rules=[cv.to_alert_rule(r) for r in items[:size]],
            next_page_token=cv.next_token(offset + size) if len(items) > size else "",
        )

    def DeleteAlertRule(self, request, context):
        self.core.rules.delete_rule(request.rule_id)
        return pb.DeleteAlertRuleResponse()

    def ListAlerts(self, request, context):
        offset = cv.page_token(request.page_token)
        size = cv.page_size(request.page_size, 50)
        start, end = cv.opt_ts(request, "start_time"), cv.opt_ts(request, "end_time")
        if start is not None and end is not None:
            cv.check_range(start, end)
        if request.rule_id and not (
            self.core.rules.rule_exists(request.rule_id) or self.core.rules.rule_ever_existed(request.rule_id)
        ):
            raise NotFound("alert rule", request.rule_id)
        items = self.core.rules.alerts(
            request.rule_id, cv.alert_states(request.states, "states"), start, end, offset, size + 1
        )
        return pb.ListAlertsResponse(
            alerts=[cv.to_alert(a) for a in items[:size]],
            next_page_token=cv.next_token(offset + size) if len(items) > size else "",
        )
