"""Search state: the trainer's tables (searches, slots, events) and the Optuna study of each search.

Optuna's RDB storage lives on the same database as the trainer's tables, so every worker process
sharing the database sees the same trials.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from loopml.runtime.db import Database, parse_url
from loopml.runtime.errors import NotFound
from loopml.services.trainer.storage import EventRow, SearchRow, SlotRow

PENDING, RUNNING, FINALIZING, SUCCEEDED, FAILED, CANCELLED = (
    "PENDING",
    "RUNNING",
    "FINALIZING",
    "SUCCEEDED",
    "FAILED",
    "CANCELLED",
)
FINAL_STATES = (SUCCEEDED, FAILED, CANCELLED)
ACTIVE_STATES = (PENDING, RUNNING, FINALIZING)


@dataclass
class TrialView:
    trial_id: str
    number: int
    family: str
    params: dict[str, Any]
    state: str  # RUNNING | COMPLETE | PRUNED | FAILED
    score: float | None = None
    score_std: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    fit_s: float = 0.0
    predict_latency_s: float = 0.0
    start_time: float | None = None
    end_time: float | None = None
    failure_reason: str = ""
    worker_id: str = ""
    from_portfolio: bool = False


@dataclass
class Progress:
    completed: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    elapsed_s: float = 0.0
    time_left_s: float = 0.0
    fraction_done: float = 0.0


@dataclass
class SearchView:
    search_id: str
    state: str
    spec: dict[str, Any]
    problem: dict[str, Any]
    create_time: float
    start_time: float | None
    end_time: float | None
    failure_reason: str
    family_failures: list[dict]
    result: dict | None
    created_by: str
    progress: Progress = field(default_factory=Progress)
    best_trial: TrialView | None = None


@dataclass
class Event:
    sequence: int
    event_time: float
    kind: str  # state_changed | trial_started | trial_finished | best_trial_changed
    payload: dict


def trial_id(search_id: str, number: int) -> str:
    return f"{search_id}-t{number}"


class SearchState:
    """Repository over the trainer's tables and the searches' Optuna studies. Thread-safe."""

    def __init__(self, database: Database, *, heartbeat_interval_s: int = 2, grace_period_s: int = 6):
        self.db = database
        self._heartbeat = (heartbeat_interval_s, grace_period_s)
        self._storage = None
        self._lock = threading.Lock()

    # -- Optuna ------------------------------------------------------------------------------

    @property
    def optuna_storage(self):
        with self._lock:
            if self._storage is None:
                import warnings

                import optuna

                optuna.logging.set_verbosity(optuna.logging.WARNING)
                # trials are driven by ask/tell from our own workers, which record heartbeats themselves
                warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
                warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
                url = parse_url(self.db.engine.url).render_as_string(hide_password=False)
                kwargs = (
                    {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {"pool_pre_ping": True}
                )
                from loopml.services.trainer.core.trial_storage import TrialStartBatchingStorage

                backend = optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=kwargs,
                    heartbeat_interval=self._heartbeat[0],
                    grace_period=self._heartbeat[1],
                )
                if url.startswith("sqlite"):
                    _relax_sqlite_sync(backend.engine)
                self._storage = TrialStartBatchingStorage(backend)
            return self._storage

    def create_study(self, search_id: str, higher_is_better: bool):
        import optuna

        return optuna.create_study(
            storage=self.optuna_storage,
            study_name=search_id,
            direction="maximize" if higher_is_better else "minimize",
            load_if_exists=True,
        )

    def study(self, search_id: str, sampler=None, pruner=None):
        import optuna

        return optuna.load_study(
            study_name=search_id, storage=self.optuna_storage, sampler=sampler, pruner=pruner
        )

    def trials(self, search_id: str) -> list[TrialView]:
        try:
            frozen = self.study(search_id).get_trials(deepcopy=False)
        except KeyError:
            return []
        return [
            _trial_view(search_id, t) for t in frozen if t.state.name != "WAITING"
        ]  # WAITING: queued configs

    # -- searches ----------------------------------------------------------------------------

    def insert(self, row: SearchRow, slots: int) -> None:
        def work(session):
            session.add(row)
            session.flush()
            for slot in range(slots):
                session.add(
                    SlotRow(search_id=row.search_id, slot=slot, worker_id=None, lease_expires=0.0, done=False)
                )
            _append(session, row, "state_changed", {"previous": "", "state": PENDING, "reason": ""})

        self.db.transaction(work)

    def by_request_id(self, request_id: str) -> SearchRow | None:
        with self.db.session() as session:
            return session.scalars(sa.select(SearchRow).where(SearchRow.request_id == request_id)).first()

    def row(self, search_id: str) -> SearchRow:
        with self.db.session() as session:
            row = session.get(SearchRow, search_id)
        if row is None:
            raise NotFound("search", search_id)
        return row

    def list_rows(self, *, states=(), dataset_id="", model_name="", offset=0, limit=50) -> list[SearchRow]:
        query = sa.select(SearchRow)
        if states:
            query = query.where(SearchRow.state.in_(states))
        if dataset_id:
            query = query.where(SearchRow.dataset_id == dataset_id)
        if model_name:
            query = query.where(SearchRow.register_model_name == model_name)
        query = query.order_by(SearchRow.create_time.desc(), SearchRow.search_id).offset(offset).limit(limit)
        with self.db.session() as session:
            return list(session.scalars(query))

    def transition(
        self, search_id: str, to: str, *, allowed_from=ACTIVE_STATES, reason: str = "", **fields
    ) -> bool:
        """Move the search to `to` if it is in one of `allowed_from` (atomically); log the event."""

        def work(session):
            row = session.get(SearchRow, search_id, with_for_update=True)
            if row is None:
                raise NotFound("search", search_id)
            if row.state not in allowed_from:
                return False
            previous, row.state = row.state, to
            for name, value in fields.items():
                setattr(row, name, value)
            if to in FINAL_STATES:
                row.end_time = time.time()
            if reason and to in (FAILED, CANCELLED):
                row.failure_reason = reason
            if previous != to:
                _append(session, row, "state_changed", {"previous": previous, "state": to, "reason": reason})
            return True

        return self.db.transaction(work)

    def update(self, search_id: str, **fields) -> None:
        def work(session):
            row = session.get(SearchRow, search_id, with_for_update=True)
            for name, value in fields.items():
                setattr(row, name, value)

        self.db.transaction(work)

    def pending_registrations(self) -> list[SearchRow]:
        with self.db.session() as session:
            return list(
                session.scalars(
                    sa.select(SearchRow).where(
                        SearchRow.registration_pending.is_(True), SearchRow.state.in_(FINAL_STATES)
                    )
                )
            )

    def finish_registration(self, search_id: str, result: str) -> None:
        """Record the outcome of a retried registration (the result JSON) and stop retrying."""
        self.update(search_id, result=result, registration_pending=False)

    def append_event(self, search_id: str, kind: str, payload: dict) -> None:
        self.append_events(search_id, [(kind, payload)])

    def append_events(self, search_id: str, events: list[tuple[str, dict]]) -> None:
        """Append (kind, payload) events in order, in one transaction."""

        def work(session):
            row = session.get(SearchRow, search_id, with_for_update=True)
            for kind, payload in events:
                _append(session, row, kind, payload)

        self.db.transaction(work)

    def events(self, search_id: str, after: int) -> list[Event]:
        with self.db.session() as session:
            rows = session.scalars(
                sa.select(EventRow)
                .where(EventRow.search_id == search_id, EventRow.sequence > after)
                .order_by(EventRow.sequence)
            ).all()
        return [Event(r.sequence, r.event_time, r.kind, json.loads(r.payload)) for r in rows]

    # -- slots (leases) ----------------------------------------------------------------------

    def claim_slot(self, worker_id: str, lease_s: float) -> tuple[str, int] | None:
        """Claim one free slot of an active search: unheld, or held under an expired lease.

        On PostgreSQL the candidate row is locked with SKIP LOCKED, so workers claiming at the
        same moment take different slots without waiting on each other; SQLite serialises writers.
        """

        def work(session):
            now = time.time()
            query = (
                sa.select(SlotRow)
                .join(SearchRow, SearchRow.search_id == SlotRow.search_id)
                .where(
                    SearchRow.state.in_((PENDING, RUNNING, FINALIZING)),
                    SlotRow.done.is_(False),
                    SlotRow.lease_expires < now,
                )
                .order_by(SearchRow.create_time, SlotRow.slot)
                .limit(1)
                .with_for_update(skip_locked=True, of=SlotRow)
            )
            slot = session.scalars(query).first()
            if slot is None:
                return None
            slot.worker_id, slot.lease_expires = worker_id, now + lease_s
            return slot.search_id, slot.slot

        return self.db.transaction(work)

    def renew_leases(self, worker_id: str, held: list[tuple[str, int]], lease_s: float) -> None:
        if not held:
            return

        def work(session):
            for search_id, slot in held:
                session.execute(
                    sa.update(SlotRow)
                    .where(
                        SlotRow.search_id == search_id, SlotRow.slot == slot, SlotRow.worker_id == worker_id
                    )
                    .values(lease_expires=time.time() + lease_s)
                )

        self.db.transaction(work)

    def release_slot(self, search_id: str, slot: int, worker_id: str, *, done: bool) -> None:
        def work(session):
            session.execute(
                sa.update(SlotRow)
                .where(SlotRow.search_id == search_id, SlotRow.slot == slot, SlotRow.worker_id == worker_id)
                .values(done=done, lease_expires=0.0 if not done else time.time())
            )

        self.db.transaction(work)

    def live_other_slots(self, search_id: str, slot: int) -> int:
        with self.db.session() as session:
            return (
                session.scalar(
                    sa.select(sa.func.count())
                    .select_from(SlotRow)
                    .where(
                        SlotRow.search_id == search_id,
                        SlotRow.slot != slot,
                        SlotRow.done.is_(False),
                        SlotRow.lease_expires >= time.time(),
                    )
                )
                or 0
            )


def _relax_sqlite_sync(engine) -> None:
    """WAL with synchronous=NORMAL on Optuna's connections: a commit no longer waits for fsync.

    Survives a crash of the trainer process (the WAL is in the OS cache); a power loss may lose
    the last trials, which the search then simply runs again. Optuna commits several times per trial.
    """
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _on_connect(connection, _record):
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    engine.dispose()  # connections made during set-up reconnect with the pragmas


def _append(session, row: SearchRow, kind: str, payload: dict) -> None:
    row.event_seq += 1
    session.add(
        EventRow(
            search_id=row.search_id,
            sequence=row.event_seq,
            event_time=time.time(),
            kind=kind,
            payload=json.dumps(payload, default=str),
        )
    )


_STATES = {
    "RUNNING": "RUNNING",
    "WAITING": "RUNNING",
    "COMPLETE": "COMPLETE",
    "PRUNED": "PRUNED",
    "FAIL": "FAILED",
}


def _trial_view(search_id: str, frozen) -> TrialView:
    started = frozen.user_attrs.get("trial", {})
    outcome = frozen.user_attrs.get("outcome", {})
    state = _STATES.get(frozen.state.name, "FAILED")
    reason = outcome.get("failure_reason", "")
    if state == "FAILED" and not reason:
        reason = "its worker stopped sending heartbeats (reaped)"
    return TrialView(
        trial_id=trial_id(search_id, frozen.number),
        number=frozen.number,
        family=started.get("family") or frozen.params.get("family", ""),
        params=started.get("params", {}),
        state=state,
        score=frozen.value if frozen.state.name == "COMPLETE" else None,
        score_std=outcome.get("score_std"),
        metrics=outcome.get("metrics", {}),
        fit_s=outcome.get("fit_s", 0.0),
        predict_latency_s=outcome.get("predict_latency_s", 0.0),
        start_time=frozen.datetime_start.timestamp() if frozen.datetime_start else None,
        end_time=frozen.datetime_complete.timestamp() if frozen.datetime_complete else None,
        failure_reason=reason,
        worker_id=started.get("worker_id", ""),
        from_portfolio=bool(started.get("from_portfolio", False)),
    )
