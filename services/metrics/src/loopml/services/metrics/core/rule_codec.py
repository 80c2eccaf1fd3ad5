"""Alert rules to and from their stored JSON form."""

from __future__ import annotations

from dataclasses import asdict, replace

from loopml.services.metrics.core.alerts import (
    Action,
    AlertRule,
    DriftTarget,
    MetricTarget,
    ModelSelector,
    PerformanceTarget,
)
from loopml.services.metrics.core.model import Matcher, MatchOp


def rule_to_json(rule: AlertRule) -> dict:
    d = asdict(rule)
    d.pop("last_evaluation")
    d.pop("last_retrain")
    kind = {MetricTarget: "metric", PerformanceTarget: "performance", DriftTarget: "drift"}[type(rule.target)]
    d["target"] = {"kind": kind, **asdict(rule.target)}
    if isinstance(rule.target, MetricTarget):
        d["target"]["matchers"] = [[m.label, m.op.value, m.value] for m in rule.target.matchers]
    return d


def rule_from_json(d: dict, **overrides) -> AlertRule:
    target = dict(d["target"])
    kind = target.pop("kind")
    if kind == "metric":
        target["matchers"] = tuple(
            Matcher(label, MatchOp(op), value) for label, op, value in target["matchers"]
        )
        built = MetricTarget(**target)
    else:
        target["model"] = ModelSelector(**target["model"])
        built = PerformanceTarget(**target) if kind == "performance" else DriftTarget(**target)
    actions = tuple(
        Action(
            **{
                **a,
                "headers": tuple(tuple(h) for h in a["headers"]),
                "model": ModelSelector(**a["model"]) if a["model"] else None,
            }
        )
        for a in d["actions"]
    )
    rule = AlertRule(
        **{**d, "target": built, "actions": actions, "labels": tuple(tuple(kv) for kv in d["labels"])}
    )
    known = ("state", "last_evaluation", "last_retrain")
    return replace(rule, **{k: v for k, v in overrides.items() if k in known and v is not None})
