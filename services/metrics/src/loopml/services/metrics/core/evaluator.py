"""Alert rules: creation (every name, model and field checked now), evaluation, actions.

`AlertEvaluator.evaluate_due()` is what the server's evaluator loop calls; it computes each due
rule's watched value, steps the rule's state machine, and runs the actions of a rule that starts
firing: record (always), webhook (on every state change), retrain (in the background, through
the `Retrainer` interface, at most once per cool-down).
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import asdict, replace

from loopml.runtime.errors import InvalidArgument, LoopmlError, NotFound
from loopml.services.metrics.core import alerts as al
from loopml.services.metrics.core import builtin, drift
from loopml.services.metrics.core.model import Aggregation, Query
from loopml.services.metrics.core.retrain import Retrainer, RetrainOutcome, RetrainRequest
from loopml.services.metrics.core.service import MetricsCore
from loopml.services.metrics.core.timeseries import validate_query

log = logging.getLogger("loopml.metrics.alerts")
#: Action results an evaluation writes (a retraining writes its own, "retrain", when it ends).
EVALUATOR_KINDS = frozenset({"record", "webhook"})

#: notify(url, headers, payload) posts an alert state change; raises on failure.
Notifier = Callable[[str, dict[str, str], dict], str]


class AlertEvaluator:
    def __init__(
        self,
        core: MetricsCore,
        retrainer: Retrainer | None = None,
        notify: Notifier | None = None,
        background: Executor | None = None,
        default_interval_s: float = 30.0,
        on_value: Callable[[al.AlertRule, float], None] | None = None,
    ):
        self.core = core
        self.rules = core.rules
        self.retrainer = retrainer
        self.notify = notify
        self.background = background
        self.default_interval_s = default_interval_s
        self.on_value = on_value

    # -- rules ----------------------------------------------------------------------------
    def create_rule(self, rule: al.AlertRule) -> al.AlertRule:
        al.validate_shape(rule)
        target = rule.target
        if isinstance(target, al.MetricTarget):
            self._check_metric_target(target)
        else:
            known = self.core.known_fields(target.model.name)  # NotFound for an unknown model
            if (
                isinstance(target, al.DriftTarget)
                and target.feature
                and target.feature != "prediction"
                and target.feature not in known.inputs
            ):
                raise InvalidArgument(
                    "rule.drift.feature", f"model {known.model_name!r} has no input {target.feature!r}"
                )
        for i, action in enumerate(rule.actions):
            if action.kind == "retrain":
                self.core.known_fields(action.model.name)
                if action.data == "predictions_with_feedback":
                    self._check_feedback_retrain(action, f"rule.actions[{i}].retrain")
        rule = replace(rule, rule_id=uuid.uuid4().hex, state=al.INACTIVE, create_time=self.core.clock())
        self.rules.add_rule(rule)
        return rule

    def _check_metric_target(self, target: al.MetricTarget) -> None:
        validate_query(
            Query(target.name, 0, 1, 1, Aggregation(target.aggregation), target.matchers, target.quantile)
        )
        definition = self.rules.custom_metric(target.name)
        if target.name in builtin.BUILTIN:
            labels = {"model", "version"}
        elif definition is not None:
            labels = set(definition.group_by)
        elif self.core.repo.metric_exists(target.name):
            labels = {k for _, lab in self.core.repo.series_of(target.name) for k in lab}
        else:
            raise NotFound("metric", target.name)
        for i, m in enumerate(target.matchers):
            if m.label not in labels:
                raise InvalidArgument(
                    f"rule.metric.matchers[{i}].label", f"metric {target.name!r} has no label {m.label!r}"
                )

    def _check_feedback_retrain(self, action: al.Action, field: str) -> None:
        """A dataset built from feedback needs the serving version's inputs and label column, and
        a search and dataset in its lineage (warm start, new dataset version): from the registry."""
        if self.core.catalog is None:
            raise InvalidArgument(f"{field}.data", "retraining on feedback needs the registry")
        model, alias = action.model.name, action.model.effective_alias or "production"
        try:
            serving = self.core.catalog.resolve_alias(model, alias)
        except NotFound:
            raise InvalidArgument(f"{field}.model", f"model {model!r} has no alias {alias!r}") from None
        if not serving.label_column or not serving.inputs:
            raise InvalidArgument(
                f"{field}.data",
                f"{model} v{serving.version} records no input columns or label column to build "
                "a training table from feedback",
            )
        if not serving.search_id or not serving.dataset_id:
            raise InvalidArgument(
                f"{field}.model",
                f"{model} v{serving.version} has no search and dataset in its lineage to retrain from",
            )

    # -- evaluation -----------------------------------------------------------------------
    def evaluate_due(self) -> int:
        now = self.core.clock()
        done = 0
        for rule in self.rules.rules():
            if rule.disabled:
                continue
            last = rule.last_evaluation
            if last is not None and now - last < (rule.interval_s or self.default_interval_s):
                continue
            try:
                self.evaluate(rule, now)
            except Exception:  # noqa: BLE001 - one broken rule must not stop the others
                log.exception("evaluating alert rule %s failed", rule.name)
            done += 1
        return done

    def evaluate(self, rule: al.AlertRule, now: float | None = None) -> str:
        """Evaluate one rule now; returns its new state."""
        now = self.core.clock() if now is None else now
        value = self.watched_value(rule, now)
        if self.on_value is not None and not math.isnan(value):
            self.on_value(rule, value)
        holds = not math.isnan(value) and al.OPS[rule.operator](value, rule.threshold)
        current = self.rules.open_alert(rule.rule_id)
        tr = al.step(rule, current, holds, now)
        retrained_at, starts = None, []
        if tr.open_alert:
            current = al.Alert(
                uuid.uuid4().hex,
                rule.rule_id,
                rule.name,
                al.PENDING,
                value,
                rule.threshold,
                now,
                labels=dict(rule.labels),
            )
        if current is not None:
            current.value = value if not math.isnan(value) else current.value
            if tr.fire:
                current.state, current.firing_time = al.FIRING, now
                retrained_at, starts = self._run_actions(rule, current, now)
            elif tr.resolve:
                current.state, current.resolved_time = al.RESOLVED, now
                self._webhooks(rule, current, now)
            elif tr.open_alert:
                self._webhooks(rule, current, now)
            current.message = self._message(rule, current)
            # a running retraining writes its own result: only overwrite what this evaluation set
            self.rules.save_alert(current, None if tr.open_alert or tr.fire else EVALUATOR_KINDS)
        self.rules.set_rule_state(rule.rule_id, tr.new_state, now, retrained_at)
        for start in starts:  # after the alert is stored, so a quick retraining finds it
            start() if self.background is None else self.background.submit(start)
        return tr.new_state

    def watched_value(self, rule: al.AlertRule, now: float) -> float:
        """The rule's value over its window ending now; NaN when there is nothing to judge."""
        start = now - rule.window_s
        t = rule.target
        try:
            if isinstance(t, al.MetricTarget):
                q = Query(
                    t.name, start, now, rule.window_s, Aggregation(t.aggregation), t.matchers, t.quantile
                )
                values = [v for s in self.core.query(q) for _, v in s.samples]
                return max(values) if values else math.nan  # worst series
            version = self._version_of(t.model)
            if isinstance(t, al.PerformanceTarget):
                perf = self.core.model_performance(t.model.name, version, start, now, [t.metric])
                for vp in perf.versions:
                    if vp.feedback_count >= max(1, t.min_feedback_count):
                        for score in vp.online:
                            if score.metric == t.metric:
                                return score.value
                return math.nan
            report = self.core.drift_report(t.model.name, version, start, now, [], drift.Thresholds())
            candidates = report.features + ([report.prediction] if report.prediction else [])
            if t.feature:
                candidates = [f for f in candidates if f.feature == t.feature]
            pick = [
                (f.ks if t.statistic == "ks" else f.psi) for f in candidates if f.severity != "unspecified"
            ]
            pick = [v for v in pick if v is not None]
            return max(pick) if pick else math.nan
        except LoopmlError as exc:
            log.warning("alert rule %s: value unavailable: %s", rule.name, exc)
            return math.nan

    def _version_of(self, model: al.ModelSelector) -> int:
        if model.version:
            return model.version
        if model.latest:
            return self.core.repo.latest_version(model.name)
        if self.core.catalog is not None:
            try:
                return self.core.catalog.resolve_alias(model.name, model.effective_alias).version
            except LoopmlError:
                pass
        return self.core.repo.latest_version(model.name)

    # -- actions --------------------------------------------------------------------------
    def _run_actions(self, rule: al.AlertRule, alert: al.Alert, now: float):
        """Record, call webhooks, prepare retrainings; returns (retrain time, retrainings to start)."""
        retrained_at, starts = None, []
        alert.action_results = [al.ActionResult("record", "succeeded", "recorded", now)]
        self._webhooks(rule, alert, now)
        for action in rule.actions:
            if action.kind == "retrain":
                result = al.ActionResult("retrain", "running", "", now)
                last = rule.last_retrain
                if self.retrainer is None:
                    result.status, result.detail = "failed", "no retrainer configured"
                elif last is not None and now - last < action.cooldown_s:
                    result.status, result.detail = "skipped", f"cool-down: last retraining at {last:.0f}"
                else:
                    retrained_at = now
                    starts.append(self._retraining(rule, alert, action, replace(result)))
                alert.action_results.append(result)
        return retrained_at, starts

    def _retraining(self, rule, alert: al.Alert, action: al.Action, result: al.ActionResult):
        """The retraining of one firing, as a callable that records its outcome on the alert."""
        request = RetrainRequest(
            action.model.name,
            action.model.effective_alias or "production",
            action.data,
            action.min_improvement,
            action.time_budget_s,
            alert.alert_id,
        )

        def run() -> None:
            try:
                outcome = self.retrainer.retrain(request)
                result.status, result.detail = "succeeded", outcome.detail
            except LoopmlError as exc:
                outcome = RetrainOutcome(detail=str(exc))
                result.status, result.detail = "failed", str(exc)
            except Exception as exc:  # noqa: BLE001 - recorded on the alert, then logged
                log.exception("retraining for rule %s failed", rule.name)
                outcome = RetrainOutcome(detail=repr(exc))
                result.status, result.detail = "failed", repr(exc)
            result.retrain = asdict(outcome)
            result.update_time = self.core.clock()
            self._store_action_result(alert.alert_id, rule.rule_id, result)

        return run

    def _store_action_result(self, alert_id: str, rule_id: str, result: al.ActionResult) -> None:
        alert = self.rules.alert(alert_id)
        if alert is not None:
            alert.action_results = [result]
            self.rules.save_alert(alert, frozenset({"retrain"}))

    def _webhooks(self, rule: al.AlertRule, alert: al.Alert, now: float) -> None:
        for action in rule.actions:
            if action.kind != "webhook":
                continue
            result = al.ActionResult("webhook", "succeeded", "", now)
            if self.notify is None:
                result.status, result.detail = "failed", "webhooks are not configured"
            else:
                try:
                    result.detail = self.notify(action.url, dict(action.headers), _payload(rule, alert))
                except Exception as exc:  # noqa: BLE001 - the failure is the action's result
                    result.status, result.detail = "failed", str(exc)
            alert.action_results = [r for r in alert.action_results if r.kind != "webhook"] + [result]

    @staticmethod
    def _message(rule: al.AlertRule, alert: al.Alert) -> str:
        return f"{rule.name}: value {alert.value:.6g} {rule.operator} {rule.threshold:g} ({alert.state})"


def _payload(rule: al.AlertRule, alert: al.Alert) -> dict:
    return {
        "rule_id": rule.rule_id,
        "rule_name": rule.name,
        "alert_id": alert.alert_id,
        "state": alert.state,
        "value": alert.value,
        "threshold": alert.threshold,
        "pending_time": alert.pending_time,
        "firing_time": alert.firing_time,
        "resolved_time": alert.resolved_time,
        "labels": alert.labels,
    }
