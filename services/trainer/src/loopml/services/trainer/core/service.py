"""The trainer's use cases, behind the gRPC adapter: create, get, list, cancel, watch, leaderboard."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from loopml.runtime.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, OutOfRange
from loopml.services.trainer.core.execution import Engine
from loopml.services.trainer.core.metrics import get_metric
from loopml.services.trainer.core.portfolio import portfolio_for
from loopml.services.trainer.core.space import SearchSpace
from loopml.services.trainer.core.spec import SearchSpec, check_request, few_trials_expected, resolve
from loopml.services.trainer.core.state import (
    CANCELLED,
    FINAL_STATES,
    FINALIZING,
    PENDING,
    RUNNING,
    Event,
    Progress,
    SearchView,
    TrialView,
)
from loopml.services.trainer.core.tasks import TASKS, Problem
from loopml.services.trainer.storage import SearchRow

MAX_PAGE = 1000


@dataclass
class Leaderboard:
    metric: str
    higher_is_better: bool
    entries: list[tuple[int, TrialView, list[dict]]]  # (rank, trial, ensemble members)
    next_page_token: str


class Trainer:
    def __init__(self, engine: Engine, *, default_parallel_trials: int = 1):
        self.engine = engine
        self.state = engine.state
        self.default_parallel_trials = default_parallel_trials

    # -- create ------------------------------------------------------------------------------

    def create_search(
        self, spec: SearchSpec, *, request_id: str = "", validate_only: bool = False, created_by: str = ""
    ) -> SearchView:
        if request_id and not validate_only:
            existing = self.state.by_request_id(request_id)
            if existing is not None:
                if (
                    json.loads(existing.spec).get("description") != spec.description
                    or json.loads(existing.spec)["dataset_id"] != spec.dataset_id
                ):
                    raise AlreadyExists(
                        "search request", request_id, "request_id reused with a different spec"
                    )
                return self.get_search(existing.search_id)
        check_request(spec)
        for i, search_id in enumerate(spec.warm_start_search_ids):
            try:
                self.state.row(search_id)
            except NotFound:
                raise NotFound("search", search_id, f"warm_start_search_ids[{i}]") from None
        info = self.engine.data.describe(spec.dataset_id, spec.dataset_version)
        if spec.split_id and spec.split_id not in info.splits:
            raise NotFound("split", spec.split_id)
        if spec.use_split_validation and not info.validation_rows.get(spec.split_id):
            raise InvalidArgument(
                "spec.validation.use_split_validation", f"split {spec.split_id} has no validation rows"
            )
        frame = self.engine.data.load(spec.dataset_id, info.version)
        spec, problem = resolve(spec, info, frame)
        now = time.time()
        search_id = uuid.uuid4().hex[:16]
        row = SearchRow(
            search_id=search_id,
            state=PENDING,
            spec=json.dumps(spec.to_dict()),
            problem=json.dumps(problem.to_dict()),
            dataset_id=spec.dataset_id,
            register_model_name=spec.register_model_name,
            tags=json.dumps(spec.tags),
            request_id=request_id or None,
            create_time=now,
            start_time=None,
            deadline=None,
            end_time=None,
            failure_reason="",
            family_failures="[]",
            result=None,
            cancel_requested=False,
            keep_best=False,
            event_seq=0,
            created_by=created_by,
        )
        if validate_only:
            return self._view(row, with_trials=False)
        if not spec.split_id:  # a seeded 75/25 split, stored on the dataset version (lineage points at it)
            stratify = problem.label if problem.task != "regression" else ""
            spec.split_id = self.engine.data.create_split(
                spec.dataset_id, spec.dataset_version, seed=spec.seed, stratify_column=stratify
            )
            row.spec = json.dumps(spec.to_dict())
        study = self.state.create_study(search_id, get_metric(spec.metric).higher_is_better)
        for family, params in self._initial_configs(spec, problem):
            study.enqueue_trial(SearchSpace.optuna_params(family, params), skip_if_exists=True)
        self.state.insert(row, spec.parallel_trials or self.default_parallel_trials)
        return self.get_search(search_id)

    def _initial_configs(self, spec: SearchSpec, problem: Problem) -> list[tuple[str, dict]]:
        """Warm-start searches' best configurations first, then the default portfolio."""
        space = TASKS["tabular"]().space(problem, spec.families)
        configs = []
        metric = get_metric(spec.metric)
        for search_id in spec.warm_start_search_ids:
            done = [
                t for t in self.state.trials(search_id) if t.score is not None and t.family in space.families
            ]
            done.sort(key=lambda t: -t.score if metric.higher_is_better else t.score)
            configs += [(t.family, t.params) for t in done[:5]]
        large = few_trials_expected(problem, spec.time_budget_s)
        return configs + portfolio_for(problem.task, space, large_data=large)

    # -- read --------------------------------------------------------------------------------

    def get_search(self, search_id: str) -> SearchView:
        return self._view(self.state.row(search_id))

    def list_searches(
        self,
        *,
        page_size: int = 0,
        page_token: str = "",
        states=(),
        dataset_id: str = "",
        model_name: str = "",
        tags: dict | None = None,
    ) -> tuple[list[SearchView], str]:
        size, offset = _page(page_size, page_token)
        rows, views, scan = [], [], offset
        while len(views) < size:  # tags are filtered here (JSON column)
            rows = self.state.list_rows(
                states=states, dataset_id=dataset_id, model_name=model_name, offset=scan, limit=size
            )
            if not rows:
                scan = -1
                break
            for row in rows:
                scan += 1
                if tags and any(json.loads(row.tags).get(k) != v for k, v in tags.items()):
                    continue
                views.append(self._view(row, with_trials=False))
                if len(views) == size:
                    break
        more = scan >= 0 and bool(
            self.state.list_rows(
                states=states, dataset_id=dataset_id, model_name=model_name, offset=scan, limit=1
            )
        )
        return views, (str(scan) if more else "")

    def leaderboard(
        self, search_id: str, *, page_size: int = 0, page_token: str = "", include_unscored: bool = False
    ) -> Leaderboard:
        size, offset = _page(page_size, page_token)
        row = self.state.row(search_id)
        spec = json.loads(row.spec)
        metric = get_metric(spec["metric"])
        trials = self.state.trials(search_id)
        scored = sorted(
            (t for t in trials if t.score is not None),
            key=lambda t: -t.score if metric.higher_is_better else t.score,
        )
        entries: list[tuple[float, TrialView, list[dict]]] = [(t.score, t, []) for t in scored]
        result = json.loads(row.result) if row.result else None
        if result and result.get("ensemble_members"):
            ensemble = TrialView(
                "ensemble",
                -1,
                "ensemble",
                {},
                "COMPLETE",
                score=result["score"],
                fit_s=result.get("fit_s", 0.0),
                predict_latency_s=result.get("predict_latency_s", 0.0),
            )
            entries.append((result["score"], ensemble, result["ensemble_members"]))
            entries.sort(key=lambda e: -e[0] if metric.higher_is_better else e[0])
        ranked = [(i + 1, t, m) for i, (_, t, m) in enumerate(entries)]
        if include_unscored:
            ranked += [(0, t, []) for t in trials if t.score is None]
        page = ranked[offset : offset + size]
        token = str(offset + size) if offset + size < len(ranked) else ""
        return Leaderboard(spec["metric"], metric.higher_is_better, page, token)

    # -- cancel and watch --------------------------------------------------------------------

    def cancel_search(self, search_id: str, *, keep_best: bool = False) -> SearchView:
        row = self.state.row(search_id)
        if row.state in FINAL_STATES:
            raise FailedPrecondition(
                f"search {search_id} is already {row.state}", subject=f"searches/{search_id}"
            )
        if row.state == PENDING or not keep_best:
            # nothing to keep: the search ends now; workers see the state and stop their trials
            self.state.transition(search_id, CANCELLED, reason="cancelled by the user", cancel_requested=True)
        else:  # trials stop; the worker holding slot 0 packages the best model, then CANCELLED
            self.state.transition(
                search_id,
                FINALIZING,
                allowed_from=(RUNNING,),
                reason="cancelled by the user",
                cancel_requested=True,
                keep_best=True,
            )
        return self.get_search(search_id)

    def watch(
        self,
        search_id: str,
        *,
        after_sequence: int | None = None,
        poll_s: float = 0.25,
        is_active=lambda: True,
    ) -> Iterator[tuple[Event, Progress]]:
        row = self.state.row(search_id)
        after, final_seen = after_sequence or 0, False
        if after > row.event_seq:
            raise OutOfRange(f"after_sequence {after} is beyond the last event ({row.event_seq})")
        while is_active():
            events = self.state.events(search_id, after)
            if events:
                progress = self.get_search(search_id).progress
                for event in events:
                    after = event.sequence
                    yield event, progress
                    if event.kind == "state_changed" and event.payload["state"] in FINAL_STATES:
                        return
            elif final_seen:
                return  # resumed after the last event of a finished search
            elif self.state.row(search_id).state in FINAL_STATES:
                final_seen = True  # one more look for events written together with the final state
            else:
                time.sleep(poll_s)

    # -- views -------------------------------------------------------------------------------

    def _view(self, row: SearchRow, with_trials: bool = True) -> SearchView:
        spec = json.loads(row.spec)
        view = SearchView(
            search_id=row.search_id,
            state=row.state,
            spec=spec,
            problem=json.loads(row.problem),
            create_time=row.create_time,
            start_time=row.start_time,
            end_time=row.end_time,
            failure_reason=row.failure_reason,
            family_failures=json.loads(row.family_failures),
            result=json.loads(row.result) if row.result else None,
            created_by=row.created_by,
        )
        trials = self.state.trials(row.search_id) if with_trials or row.state != PENDING else []
        view.progress = _progress(row, spec, trials)
        metric = get_metric(spec["metric"])
        scored = [t for t in trials if t.score is not None]
        if scored:
            view.best_trial = (max if metric.higher_is_better else min)(scored, key=lambda t: t.score)
        return view


def _progress(row: SearchRow, spec: dict, trials: list[TrialView]) -> Progress:
    counts = {s: sum(1 for t in trials if t.state == s) for s in ("COMPLETE", "PRUNED", "FAILED", "RUNNING")}
    now = row.end_time or time.time()
    elapsed = (now - row.start_time) if row.start_time else 0.0
    budget = spec.get("time_budget_s")
    left = max(0.0, row.deadline - now) if row.deadline and row.state not in FINAL_STATES else 0.0
    fractions = []
    if budget:
        fractions.append(elapsed / budget)
    if spec.get("max_trials"):
        fractions.append(len(trials) / spec["max_trials"])
    fraction = 1.0 if row.state in FINAL_STATES else min(1.0, max(fractions, default=0.0))
    return Progress(
        counts["COMPLETE"], counts["PRUNED"], counts["FAILED"], counts["RUNNING"], elapsed, left, fraction
    )


def _page(page_size: int, page_token: str) -> tuple[int, int]:
    if page_size < 0:
        raise InvalidArgument("page_size", "must be >= 0")
    size = min(page_size or 50, MAX_PAGE)
    if not page_token:
        return size, 0
    if not page_token.isdigit():
        raise InvalidArgument("page_token", "not a token this service gave")
    return size, int(page_token)
