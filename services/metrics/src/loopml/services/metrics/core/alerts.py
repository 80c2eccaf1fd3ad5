"""Alert rules and their state machine (inactive -> pending -> firing -> resolved)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from loopml.runtime.errors import InvalidArgument

OPS = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}

INACTIVE, PENDING, FIRING, RESOLVED = "inactive", "pending", "firing", "resolved"


@dataclass(frozen=True)
class MetricTarget:
    name: str
    matchers: tuple = ()  # tuple[model.Matcher, ...]
    aggregation: str = "avg"
    quantile: float = 0.0


@dataclass(frozen=True)
class ModelSelector:
    name: str
    alias: str = ""  # alias, or
    version: int = 0  # a version, or
    latest: bool = False  # the highest version; none of these: the alias "production"

    @property
    def effective_alias(self) -> str:
        return self.alias or ("" if self.version or self.latest else "production")


@dataclass(frozen=True)
class PerformanceTarget:
    model: ModelSelector
    metric: str
    min_feedback_count: int = 0


@dataclass(frozen=True)
class DriftTarget:
    model: ModelSelector
    feature: str = ""  # "" = the most drifted; "prediction" = prediction drift
    statistic: str = "psi"  # or "ks"


@dataclass(frozen=True)
class Action:
    kind: str  # "record", "webhook", "retrain"
    url: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    model: ModelSelector | None = None
    data: str = "newest_dataset_version"
    min_improvement: float = 0.0
    time_budget_s: float = 0.0
    cooldown_s: float = 0.0


@dataclass(frozen=True)
class AlertRule:
    name: str
    target: MetricTarget | PerformanceTarget | DriftTarget
    operator: str
    threshold: float
    window_s: float
    for_s: float = 0.0
    interval_s: float = 0.0
    actions: tuple[Action, ...] = ()
    description: str = ""
    disabled: bool = False
    labels: tuple[tuple[str, str], ...] = ()
    rule_id: str = ""
    state: str = INACTIVE
    create_time: float = 0.0
    #: Bookkeeping of the evaluator (not part of the definition).
    last_evaluation: float | None = field(default=None, compare=False)
    last_retrain: float | None = field(default=None, compare=False)

    @property
    def model_name(self) -> str:
        return "" if isinstance(self.target, MetricTarget) else self.target.model.name


@dataclass
class ActionResult:
    kind: str
    status: str  # "running", "succeeded", "failed", "skipped"
    detail: str = ""
    update_time: float = 0.0
    retrain: dict[str, Any] | None = None


@dataclass
class Alert:
    alert_id: str
    rule_id: str
    rule_name: str
    state: str
    value: float
    threshold: float
    pending_time: float
    firing_time: float | None = None
    resolved_time: float | None = None
    message: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    action_results: list[ActionResult] = field(default_factory=list)


def validate_shape(rule: AlertRule) -> None:
    """The checks that need no lookups (the service checks names, models and fields)."""
    if not rule.name:
        raise InvalidArgument("rule.name", "a name is required")
    if rule.target is None:
        raise InvalidArgument("rule.target", "one of metric, performance or drift is required")
    if rule.operator not in OPS:
        raise InvalidArgument(
            "rule.operator", "operator must be one of ==, !=, >, >=, <, <= (not IN / NOT_IN)"
        )
    if not math.isfinite(rule.threshold):
        raise InvalidArgument("rule.threshold", "threshold must be finite")
    if rule.window_s <= 0:
        raise InvalidArgument("rule.window", "window is required and must be > 0")
    if rule.for_s < 0:
        raise InvalidArgument("rule.for_duration", "for_duration must not be negative")
    if rule.interval_s < 0:
        raise InvalidArgument("rule.evaluation_interval", "evaluation_interval must not be negative")
    if isinstance(rule.target, PerformanceTarget) and not rule.target.metric:
        raise InvalidArgument("rule.performance.metric", "a metric is required")
    if isinstance(rule.target, DriftTarget) and rule.target.statistic not in ("psi", "ks"):
        raise InvalidArgument("rule.drift.statistic", "statistic must be PSI or KS")
    for i, action in enumerate(rule.actions):
        if action.kind == "webhook" and not action.url.startswith(("http://", "https://")):
            raise InvalidArgument(f"rule.actions[{i}].webhook.url", "webhook URL must be http(s)")
        if action.kind == "retrain":
            m = action.model
            if m is None or not m.name:
                raise InvalidArgument(
                    f"rule.actions[{i}].retrain.model.name", "the model to retrain is required"
                )
            if m.version or m.latest:
                raise InvalidArgument(
                    f"rule.actions[{i}].retrain.model",
                    "retrain needs an alias (the alias it may move), not a version",
                )
            if action.min_improvement < 0 or action.cooldown_s < 0 or action.time_budget_s < 0:
                raise InvalidArgument(
                    f"rule.actions[{i}].retrain",
                    "min_improvement, time_budget and cooldown must not be negative",
                )


@dataclass(frozen=True)
class Transition:
    """What one evaluation does to a rule's open alert."""

    new_state: str  # the rule's state after the evaluation
    open_alert: bool = False  # a new alert starts (pending, or firing at once)
    fire: bool = False  # the open alert goes to firing now (run the actions)
    resolve: bool = False  # the open alert ends


def step(rule: AlertRule, current: Alert | None, holds: bool, now: float) -> Transition:
    """The state machine. `current` is the rule's open (pending or firing) alert, if any."""
    if holds:
        if current is None:
            if rule.for_s <= 0:
                return Transition(FIRING, open_alert=True, fire=True)
            return Transition(PENDING, open_alert=True)
        if current.state == PENDING and now - current.pending_time >= rule.for_s:
            return Transition(FIRING, fire=True)
        return Transition(current.state)
    if current is None:
        return Transition(INACTIVE if rule.state != RESOLVED else RESOLVED)
    # A pending alert that never fired ends too (resolved without a firing time).
    return Transition(RESOLVED, resolve=True)
