"""Custom metrics, alert rules and alerts in the database (definitions stored as JSON)."""

from __future__ import annotations

import json
from dataclasses import asdict

import sqlalchemy as sa

from loopml.runtime.db import Database, map_unique_violation
from loopml.runtime.errors import FailedPrecondition, NotFound
from loopml.services.metrics import storage as t
from loopml.services.metrics.core import custom
from loopml.services.metrics.core.alerts import FIRING, PENDING, ActionResult, Alert, AlertRule
from loopml.services.metrics.core.rule_codec import rule_from_json, rule_to_json


class RulesRepository:
    def __init__(self, database: Database):
        self.db = database

    # -- custom metrics -------------------------------------------------------------------
    def add_custom_metric(self, metric: custom.CustomMetric) -> None:
        row = {
            "name": metric.name,
            "model_name": metric.model_name,
            "definition": json.dumps(custom.to_json(metric)),
            "create_time": metric.create_time,
        }
        with map_unique_violation("custom metric", metric.name):
            self.db.transaction(lambda s: s.execute(sa.insert(t.custom_metrics), [row]))

    def custom_metric(self, name: str) -> custom.CustomMetric | None:
        with self.db.session() as s:
            row = s.execute(
                sa.select(t.custom_metrics.c.definition).where(t.custom_metrics.c.name == name)
            ).first()
        return custom.from_json(json.loads(row[0])) if row else None

    def custom_metrics(self, model_name: str, offset: int, limit: int) -> list[custom.CustomMetric]:
        c = t.custom_metrics.c
        stmt = sa.select(c.definition).order_by(c.name).offset(offset).limit(limit)
        if model_name:
            stmt = stmt.where(c.model_name == model_name)
        with self.db.session() as s:
            return [custom.from_json(json.loads(d)) for (d,) in s.execute(stmt)]

    def delete_custom_metric(self, name: str) -> None:
        def work(session) -> None:
            for (definition,) in session.execute(sa.select(t.alert_rules.c.definition)):
                rule = rule_from_json(json.loads(definition))
                if getattr(rule.target, "name", None) == name and not hasattr(rule.target, "model"):
                    raise FailedPrecondition(
                        f"custom metric {name!r} is used by alert rule {rule.name!r}",
                        subject=f"custom metric {name}",
                    )
            if not session.execute(
                sa.delete(t.custom_metrics).where(t.custom_metrics.c.name == name)
            ).rowcount:
                raise NotFound("custom metric", name)

        self.db.transaction(work)

    # -- alert rules ----------------------------------------------------------------------
    def add_rule(self, rule: AlertRule) -> None:
        row = {
            "rule_id": rule.rule_id,
            "name": rule.name,
            "model_name": rule.model_name,
            "definition": json.dumps(rule_to_json(rule)),
            "state": rule.state,
            "create_time": rule.create_time,
        }
        with map_unique_violation("alert rule", rule.name):
            self.db.transaction(lambda s: s.execute(sa.insert(t.alert_rules), [row]))

    def rules(self, model_name: str = "", offset: int = 0, limit: int | None = None) -> list[AlertRule]:
        c = t.alert_rules.c
        stmt = sa.select(c.definition, c.state, c.last_evaluation, c.last_retrain).order_by(
            c.create_time, c.rule_id
        )
        if model_name:
            stmt = stmt.where(c.model_name == model_name)
        stmt = stmt.offset(offset)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self.db.session() as s:
            return [
                rule_from_json(json.loads(d), state=st, last_evaluation=le, last_retrain=lr)
                for d, st, le, lr in s.execute(stmt)
            ]

    def rule_exists(self, rule_id: str) -> bool:
        with self.db.session() as s:
            return (
                s.execute(
                    sa.select(t.alert_rules.c.rule_id).where(t.alert_rules.c.rule_id == rule_id)
                ).first()
                is not None
            )

    def delete_rule(self, rule_id: str) -> None:
        def work(session) -> None:
            if not session.execute(
                sa.delete(t.alert_rules).where(t.alert_rules.c.rule_id == rule_id)
            ).rowcount:
                raise NotFound("alert rule", rule_id)

        self.db.transaction(work)

    def set_rule_state(
        self, rule_id: str, state: str, evaluated_at: float, retrained_at: float | None = None
    ) -> None:
        values = {"state": state, "last_evaluation": evaluated_at}
        if retrained_at is not None:
            values["last_retrain"] = retrained_at
        self.db.transaction(
            lambda s: s.execute(
                sa.update(t.alert_rules).where(t.alert_rules.c.rule_id == rule_id).values(**values)
            )
        )

    # -- alerts ---------------------------------------------------------------------------
    def open_alert(self, rule_id: str) -> Alert | None:
        c = t.alerts.c
        with self.db.session() as s:
            row = (
                s.execute(
                    sa.select(t.alerts)
                    .where(c.rule_id == rule_id, c.state.in_([PENDING, FIRING]))
                    .order_by(c.pending_time.desc())
                    .limit(1)
                )
                .mappings()
                .first()
            )
        return _alert(row) if row else None

    def save_alert(self, alert: Alert, kinds: frozenset[str] | None = None) -> None:
        """Insert or update an alert. With `kinds`, only the action results of those kinds are
        taken from `alert`; the stored results of other kinds stay (the evaluator and a running
        retraining update one alert concurrently)."""
        row = _row(alert)

        def work(session) -> None:
            c = t.alerts.c
            if kinds is not None:
                stored = session.execute(
                    sa.select(c.action_results).where(c.alert_id == alert.alert_id)
                ).scalar()
                if stored is not None:
                    kept = [r for r in json.loads(stored) if r["kind"] not in kinds]
                    mine = [asdict(r) for r in alert.action_results if r.kind in kinds]
                    row["action_results"] = json.dumps(kept + mine)
            updated = session.execute(
                sa.update(t.alerts).where(c.alert_id == alert.alert_id).values(**row)
            ).rowcount
            if not updated:
                session.execute(sa.insert(t.alerts), [row])

        self.db.transaction(work)

    def alert(self, alert_id: str) -> Alert | None:
        with self.db.session() as s:
            row = s.execute(sa.select(t.alerts).where(t.alerts.c.alert_id == alert_id)).mappings().first()
        return _alert(row) if row else None

    def alerts(
        self, rule_id: str, states: list[str], start: float | None, end: float | None, offset: int, limit: int
    ) -> list[Alert]:
        c = t.alerts.c
        stmt = sa.select(t.alerts).order_by(c.pending_time.desc(), c.alert_id).offset(offset).limit(limit)
        if rule_id:
            stmt = stmt.where(c.rule_id == rule_id)
        if states:
            stmt = stmt.where(c.state.in_(states))
        if start is not None:  # active at or after start: not resolved before it
            stmt = stmt.where(sa.or_(c.resolved_time.is_(None), c.resolved_time >= start))
        if end is not None:
            stmt = stmt.where(c.pending_time < end)
        with self.db.session() as s:
            return [_alert(r) for r in s.execute(stmt).mappings()]

    def rule_ever_existed(self, rule_id: str) -> bool:
        with self.db.session() as s:
            return (
                s.execute(
                    sa.select(t.alerts.c.alert_id).where(t.alerts.c.rule_id == rule_id).limit(1)
                ).first()
                is not None
            )


def _row(a: Alert) -> dict:
    return {
        "alert_id": a.alert_id,
        "rule_id": a.rule_id,
        "rule_name": a.rule_name,
        "state": a.state,
        "value": a.value,
        "threshold": a.threshold,
        "pending_time": a.pending_time,
        "firing_time": a.firing_time,
        "resolved_time": a.resolved_time,
        "message": a.message,
        "labels": json.dumps(a.labels),
        "action_results": json.dumps([asdict(r) for r in a.action_results]),
    }


def _alert(row) -> Alert:
    return Alert(
        row["alert_id"],
        row["rule_id"],
        row["rule_name"],
        row["state"],
        row["value"],
        row["threshold"],
        row["pending_time"],
        row["firing_time"],
        row["resolved_time"],
        row["message"],
        json.loads(row["labels"]),
        [ActionResult(**r) for r in json.loads(row["action_results"])],
    )
