"""Running a search: one `SlotRun` per claimed slot asks Optuna for configurations and runs them in a
worker process; the holder of slot 0 finalises (ensemble selection, refit, packaging, registration)
once every other slot is done.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import pickle
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from loopml.modelkit import ColumnSpec, ModelBundle, dump_bundle
from loopml.modelkit.ensemble import DecodedClassifier
from loopml.services.trainer.core.calibration import blend, fit_temperature, scaled_probabilities
from loopml.services.trainer.core.datasource import DataSource
from loopml.services.trainer.core.ensemble import select_ensemble
from loopml.services.trainer.core.evaluate import make_folds
from loopml.services.trainer.core.metrics import get_metric
from loopml.services.trainer.core.optuna_setup import make_pruner, make_sampler
from loopml.services.trainer.core.registration import QUICK_RETRY_DELAYS_S, register
from loopml.services.trainer.core.spec import SearchSpec
from loopml.services.trainer.core.state import (
    CANCELLED,
    FAILED,
    FINALIZING,
    PENDING,
    RUNNING,
    SUCCEEDED,
    SearchState,
    TrialView,
    trial_id,
)
from loopml.services.trainer.core.tasks import TASKS, Problem
from loopml.services.trainer.core.worker import TrialData, TrialWorker

log = logging.getLogger(__name__)

#: How many of the best single trials the finish may fall back to when a refit won't fit the budget.
RUNNERS_UP = 5
#: How a refit that ran out of (or would run out of) the budget's time reports itself.
OUT_OF_TIME = ("time limit", "no time left")


class ModelRegistry(Protocol):
    def register(
        self, name: str, artifact: bytes, sha256: str, bundle: ModelBundle, lineage: dict, description: str
    ) -> tuple[str, int]:
        """Create a model version; returns (name, version). Raises when the registry cannot."""


@dataclass
class EngineConfig:
    worker_id: str
    default_trial_time_limit_s: float = 600.0
    default_trial_memory_limit_bytes: int = 4 * 2**30
    lease_s: float = 10.0
    #: Share of the time budget kept for ensemble selection, refit and packaging.
    finalize_share: float = 0.1


@dataclass
class Engine:
    """What a search run needs: state, object store, data, registry and configuration."""

    state: SearchState
    store: Any
    data: DataSource
    registry: ModelRegistry | None
    config: EngineConfig


def encode_target(problem: Problem, values: pd.Series) -> np.ndarray:
    if problem.task == "regression":
        return values.to_numpy(dtype=float)
    codes = {str(c): i for i, c in enumerate(problem.classes)}
    return values.astype(str).map(codes).to_numpy(dtype=np.int64)


def load_training_data(engine: Engine, spec: SearchSpec, problem: Problem) -> TrialData:
    """The train part (scored by CV, holdout or the split's validation part) and the test part (for
    the holdout metrics). With the split's validation part, trials fit on the train part and are
    scored on the validation part; the refit uses both."""
    validation = None
    if spec.split_id:
        train = engine.data.load(spec.dataset_id, spec.dataset_version, spec.split_id, "train")
        test = engine.data.load(spec.dataset_id, spec.dataset_version, spec.split_id, "test")
        if spec.use_split_validation:
            validation = engine.data.load(spec.dataset_id, spec.dataset_version, spec.split_id, "validation")
    else:  # no stored split: a seeded 75/25 split, stratified for classification
        from sklearn.model_selection import train_test_split

        frame = engine.data.load(spec.dataset_id, spec.dataset_version)
        frame = frame[frame[problem.label].notna()].reset_index(drop=True)
        stratify = frame[problem.label].astype(str) if problem.task != "regression" else None
        if stratify is not None and stratify.value_counts().min() < 2:
            stratify = None
        train, test = train_test_split(frame, test_size=0.25, random_state=spec.seed, stratify=stratify)
    train = train[train[problem.label].notna()].reset_index(drop=True)
    test = test[test[problem.label].notna()].reset_index(drop=True)
    if validation is not None:  # one fold: train rows first, then the validation rows
        validation = validation[validation[problem.label].notna()].reset_index(drop=True)
        fitted = len(train)
        train = pd.concat([train, validation], ignore_index=True)
        folds = [(np.arange(fitted), np.arange(fitted, len(train)))]
    y = encode_target(problem, train[problem.label])
    if validation is None:
        folds = make_folds(problem, y, spec.cv_folds, spec.holdout_fraction, spec.seed)
    features = list(problem.features)
    weight = spec.weight_column
    return TrialData(
        "tabular",
        problem.to_dict(),
        train[features],
        y,
        folds,
        spec.metric,
        spec.seed,
        test[features],
        encode_target(problem, test[problem.label]),
        weights=train[weight].to_numpy(dtype=float) if weight else None,
        test_weights=test[weight].to_numpy(dtype=float) if weight else None,
    )


def oof_key(search_id: str, number: int) -> str:
    return f"trainer/searches/{search_id}/oof/{number}.npy"


class SlotRun:
    """One worker's share of one search."""

    def __init__(self, engine: Engine, search_id: str, slot: int, stop: threading.Event):
        self.engine, self.search_id, self.slot, self.stop = engine, search_id, slot, stop
        self._flags = (0.0, False)  # (checked at, stop wanted)
        # Bookkeeping that need not delay the next trial (event log, OOF predictions) is written
        # by one background thread, in order, while the worker evaluates; flushed before the slot
        # is released, so the finaliser and other workers see all of it.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"search-{search_id}-{slot}-io")
        self._writes: list[Future] = []

    @property
    def state(self) -> SearchState:
        return self.engine.state

    def run(self) -> None:
        row = self.state.row(self.search_id)
        spec = SearchSpec.from_dict(json.loads(row.spec))
        problem = Problem.from_dict(json.loads(row.problem))
        worker = refit_worker = None
        try:
            data = load_training_data(self.engine, spec, problem)
            worker = TrialWorker(data)
            if self.slot == 0:  # a warm process for the refit, so the finish fits in the budget
                warm = tuple(m for f, m in (("mlp", "torch"), ("xgboost", "xgboost")) if f in spec.families)
                refit_worker = TrialWorker(dataclasses.replace(data, warm_imports=warm))
                refit_worker.prestart()
            if row.state in (PENDING, RUNNING):
                if row.state == PENDING:
                    now = time.time()
                    deadline = now + spec.time_budget_s if spec.time_budget_s else None
                    self.state.transition(
                        self.search_id, RUNNING, allowed_from=(PENDING,), start_time=now, deadline=deadline
                    )
                self._trials(spec, problem, worker)
            self._flush_writes()
            if self.stop.is_set():
                self.state.release_slot(self.search_id, self.slot, self.engine.config.worker_id, done=False)
                return
            self.state.release_slot(self.search_id, self.slot, self.engine.config.worker_id, done=True)
            if self.slot == 0:
                self._wait_for_other_slots()
                worker.stop()
                Finalizer(self.engine, self.search_id, spec, problem, refit_worker).run()
        except Exception as exc:  # noqa: BLE001 - the search fails with the reason, the worker goes on
            log.exception("search %s failed", self.search_id)
            self.state.transition(self.search_id, FAILED, reason=f"{type(exc).__name__}: {exc}")
        finally:
            self._flush_writes()
            self._writer.shutdown()
            for process in (worker, refit_worker):
                if process is not None:
                    process.stop()

    def _write_later(self, function, *args) -> None:
        self._writes.append(self._writer.submit(function, *args))

    def _flush_writes(self) -> None:
        for future in self._writes:
            try:
                future.result()
            except Exception:  # noqa: BLE001 - a lost event or OOF file must not fail the search
                log.exception("search %s: background write failed", self.search_id)
        self._writes.clear()

    # -- trials ------------------------------------------------------------------------------

    def _stop_wanted(self, deadline: float | None) -> bool:
        if self.stop.is_set():
            return True
        checked, wanted = self._flags
        if time.monotonic() - checked > 0.5:
            row = self.state.row(self.search_id)
            wanted = row.state != RUNNING or row.cancel_requested
            self._flags = (time.monotonic(), wanted)
        return wanted

    def _trials(self, spec: SearchSpec, problem: Problem, worker: TrialWorker) -> None:
        import optuna

        config = self.engine.config
        task = TASKS["tabular"]()
        space = task.space(problem, spec.families)
        sampler = make_sampler(spec.strategy, space, spec.seed + self.slot)
        study = self.state.study(self.search_id, sampler=sampler, pruner=make_pruner(spec.pruner))
        optuna.storages.fail_stale_trials(study)
        metric = get_metric(spec.metric)
        budget = spec.time_budget_s
        reserve = (config.finalize_share * budget + 1.0) if budget else 0.0
        trial_limit = spec.trial_time_limit_s or config.default_trial_time_limit_s
        memory_limit = spec.trial_memory_limit_bytes or config.default_trial_memory_limit_bytes
        while True:
            row = self.state.row(self.search_id)
            if self.stop.is_set() or row.state != RUNNING or row.cancel_requested:
                return
            limit = trial_limit
            if row.deadline is not None:
                left = row.deadline - reserve - time.time()
                if left < 0.5:
                    return
                limit = min(limit, left)
            if spec.max_trials and _started(study) >= spec.max_trials:
                return
            trial = study.ask()
            storage = study._storage
            storage.hold_params(trial._trial_id)
            family, params = space.sample(trial)
            fixed = bool(trial._fixed_params)  # an enqueued portfolio configuration
            # parameters, start attributes and first heartbeat: one transaction
            storage.commit_start(
                trial._trial_id,
                {
                    "trial": {
                        "family": family,
                        "params": params,
                        "worker_id": config.worker_id,
                        "from_portfolio": fixed,
                    }
                },
            )
            view = TrialView(
                trial_id(self.search_id, trial.number),
                trial.number,
                family,
                params,
                "RUNNING",
                start_time=time.time(),
                worker_id=config.worker_id,
                from_portfolio=fixed,
            )
            self._write_later(self.state.append_event, self.search_id, "trial_started", asdict(view))
            self._run_trial(study, trial, worker, view, limit, memory_limit, metric, row.deadline)

    def _run_trial(
        self, study, trial, worker, view: TrialView, limit, memory_limit, metric, deadline
    ) -> None:
        import optuna

        storage = study._storage
        beat = [time.monotonic()]

        def tick():
            if time.monotonic() - beat[0] > 1.0:
                beat[0] = time.monotonic()
                storage.record_heartbeat(trial._trial_id)

        def report(step: int, score: float) -> bool:
            trial.report(score, step)
            return trial.should_prune()

        # without a pruner the worker sends no intermediate scores (each would be a database write)
        pruning = not isinstance(study.pruner, optuna.pruners.NopPruner)
        request = {"family": view.family, "params": view.params, "report": pruning}
        outcome = worker.run(
            "trial",
            request,
            time_limit_s=limit,
            memory_limit_bytes=memory_limit,
            on_report=report if pruning else None,
            should_stop=lambda: self._stop_wanted(deadline),
            on_tick=tick,
        )
        try:
            previous_best = study.best_value
        except ValueError:
            previous_best = None
        state, score, result = optuna.trial.TrialState.FAIL, None, {}
        if outcome.status == "done":
            values = outcome.value
            self._write_later(self._store_oof, trial.number, values["oof"])
            result = {
                name: values[name]
                for name in ("score_std", "metrics", "fit_s", "predict_latency_s", "eval_s")
            }
            if np.isfinite(values["score"]):
                state, score = optuna.trial.TrialState.COMPLETE, float(values["score"])
            else:
                result["failure_reason"] = f"score is {values['score']}"
        else:
            result["failure_reason"] = str(outcome.value)
            if outcome.status == "pruned":
                state = optuna.trial.TrialState.PRUNED
        storage.hold_user_attrs(trial._trial_id, {"outcome": result})  # written by tell's commit
        study.tell(trial, score) if score is not None else study.tell(trial, state=state)
        finished = TrialView(
            **{
                **asdict(view),
                "state": _STATE_NAMES[state.name],
                "score": score,
                "score_std": result.get("score_std"),
                "metrics": result.get("metrics", {}),
                "fit_s": result.get("fit_s", 0.0),
                "predict_latency_s": result.get("predict_latency_s", 0.0),
                "failure_reason": result.get("failure_reason", ""),
                "end_time": time.time(),
            }
        )
        events = [("trial_finished", asdict(finished))]
        if finished.state == "COMPLETE":
            better = previous_best is None or (
                finished.score > previous_best if metric.higher_is_better else finished.score < previous_best
            )
            if better:
                events.append(
                    ("best_trial_changed", {"trial": asdict(finished), "previous_score": previous_best})
                )
        self._write_later(self.state.append_events, self.search_id, events)
        log.info(
            "search %s trial %d %s %s in %.2fs",
            self.search_id,
            trial.number,
            view.family,
            finished.state,
            finished.end_time - view.start_time,
        )

    def _store_oof(self, number: int, oof: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.save(buffer, oof, allow_pickle=False)
        self.engine.store.put(oof_key(self.search_id, number), buffer.getvalue())

    def _wait_for_other_slots(self) -> None:
        waited = time.monotonic()
        while self.state.live_other_slots(self.search_id, self.slot) and not self.stop.is_set():
            if time.monotonic() - waited > 3 * self.engine.config.lease_s:
                break
            time.sleep(0.2)


def ensemble_candidates(ranked: list[TrialView], best: int = 12, per_family: int = 2) -> list[TrialView]:
    """The library for ensemble selection: the `best` trials (ranked best first), then the best
    `per_family` trials of each family not among them, so that a family with other errors gets a
    chance even when one family fills the top of the leaderboard. Best first, as given."""
    chosen = ranked[:best]
    taken = Counter(t.family for t in chosen)
    for trial in ranked[best:]:
        if taken[trial.family] < per_family:
            chosen.append(trial)
            taken[trial.family] += 1
    return chosen


def refit_estimate_s(members: list[TrialView]) -> float:
    """A cautious guess of a refit's time on all training rows, from the members' fold fit times."""
    return sum(m.fit_s for m in members) * 1.5 + 1.0


class Finalizer:
    """Ensemble selection, refit on all training rows, packaging and registration."""

    def __init__(
        self, engine: Engine, search_id: str, spec: SearchSpec, problem: Problem, worker: TrialWorker
    ):
        self.engine, self.search_id, self.spec, self.problem, self.worker = (
            engine,
            search_id,
            spec,
            problem,
            worker,
        )
        self.state = engine.state

    def run(self) -> None:
        row = self.state.row(self.search_id)
        if row.state not in (RUNNING, FINALIZING, PENDING):
            return
        cancelled = bool(row.cancel_requested)
        self.state.transition(self.search_id, FINALIZING, allowed_from=(PENDING, RUNNING, FINALIZING))
        self._reap_orphans()
        trials = self.state.trials(self.search_id)
        failures = family_failures(trials)
        complete = [t for t in trials if t.state == "COMPLETE"]
        if not complete:
            if cancelled:
                self.state.transition(
                    self.search_id,
                    CANCELLED,
                    reason="cancelled before any trial finished",
                    family_failures=json.dumps(failures),
                )
            else:
                reasons = "; ".join(f"{f['family']}: {f['reason']}" for f in failures) or "no trial ran"
                self.state.transition(
                    self.search_id,
                    FAILED,
                    reason=f"every trial failed ({reasons})",
                    family_failures=json.dumps(failures),
                )
            return
        metric = get_metric(self.spec.metric)
        complete.sort(key=lambda t: -t.score if metric.higher_is_better else t.score)
        # In order of preference: the ensemble, then the best single trials; a choice whose refit
        # is not expected to end within the budget is passed over for the next one.
        runners_up = complete[:RUNNERS_UP]
        choices = [([t], [1.0], t.score) for t in runners_up]
        quickest = min(runners_up, key=lambda t: t.fit_s)
        member_betas: dict[str, float] = {}
        if self.spec.ensemble and not cancelled and len(complete) >= 2:
            library = ensemble_candidates(complete)
            outputs = self._load_oof(library)
            to_beat = complete[0].score
            if metric.name == "log_loss":  # blend calibrated members (log loss is what it improves)
                member_betas = self._member_temperatures(outputs)
                for key, beta in member_betas.items():
                    outputs[key] = scaled_probabilities(outputs[key], beta)
                if complete[0].trial_id in member_betas:  # the best single model, calibrated
                    to_beat = self._oof_score(outputs[complete[0].trial_id], metric)
            ensembles = []
            ensemble = self._ensemble(library, outputs, metric, to_beat)
            while ensemble is not None:
                ensembles.append(ensemble)
                time_left_s = self._refit_time_left_s(refit_estimate_s([quickest]))
                if time_left_s is None or refit_estimate_s(ensemble[0]) <= time_left_s:
                    break
                # its refit would not fit the time left: select again without its slowest member
                slowest = max(ensemble[0], key=lambda t: t.fit_s)
                library = [t for t in library if t is not slowest]
                ensemble = self._ensemble(library, outputs, metric, to_beat)
            choices[:0] = ensembles
        result, error = None, ""
        for members, weights, score in choices:  # noqa: B007 - the chosen one is used below
            # keep time for the quickest trial's refit, the last resort, unless this is it
            reserve_s = 0.0 if members == [quickest] else refit_estimate_s([quickest])
            betas = member_betas if len(members) > 1 else {}
            result, error = self._refit(members, weights, reserve_s=reserve_s, member_betas=betas)
            if result is not None:
                break
        if result is None and error.startswith(OUT_OF_TIME):
            # better late than nothing: the quickest of the best trials, without the budget's limit
            log.warning("search %s: refit over the budget (%s)", self.search_id, error)
            members, weights, score = [quickest], [1.0], quickest.score
            result, error = self._refit(members, weights, within_budget=False)
        if result is None:
            self.state.transition(
                self.search_id, FAILED, reason=f"refit failed: {error}", family_failures=json.dumps(failures)
            )
            return
        summary = self._package(members, weights, score, result)
        final = CANCELLED if cancelled else SUCCEEDED
        self.state.transition(
            self.search_id,
            final,
            allowed_from=(FINALIZING,),
            reason="cancelled; kept the best model so far" if cancelled else "",
            result=json.dumps(summary),
            family_failures=json.dumps(failures),
            registration_pending=summary["registration_pending"],
        )

    def _reap_orphans(self) -> None:
        """Every slot is done now, so a trial still RUNNING lost its worker: it failed."""
        import optuna

        study = self.state.study(self.search_id)
        for frozen in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            study._storage.set_trial_user_attr(
                frozen._trial_id, "outcome", {"failure_reason": "its worker process stopped (reaped)"}
            )
            study._storage.set_trial_state_values(frozen._trial_id, optuna.trial.TrialState.FAIL)

    def _load_oof(self, trials: list[TrialView]) -> dict[str, np.ndarray]:
        """Out-of-fold predictions by trial id."""
        outputs = {}
        for trial in trials:
            try:
                outputs[trial.trial_id] = np.load(
                    io.BytesIO(self.engine.store.read_bytes(oof_key(self.search_id, trial.number))),
                    allow_pickle=False,
                )
            except Exception:  # noqa: BLE001 - a missing OOF file only leaves that trial out
                continue
        return outputs

    def _refit_time_left_s(self, reserve_s: float) -> float | None:
        """Seconds a refit may still take within the budget + 5%, keeping `reserve_s`; None: no budget."""
        row = self.state.row(self.search_id)
        if row.deadline is None or not self.spec.time_budget_s:
            return None
        return row.deadline + 0.05 * self.spec.time_budget_s - 0.5 - reserve_s - time.time()

    def _ensemble(self, candidates: list[TrialView], loaded: dict[str, np.ndarray], metric, to_beat: float):
        """Ensemble selection over `candidates`: (members, weights, score), or None when no ensemble
        of two or more beats the score `to_beat` (the best single trial's)."""
        outputs = {t.trial_id: loaded[t.trial_id] for t in candidates if t.trial_id in loaded}
        if len(outputs) < 2:
            return None
        data = self.worker._data
        weights, score = select_ensemble(outputs, data.y, metric, weights=data.weights)
        if len(weights) < 2:
            return None
        if not (score > to_beat if metric.higher_is_better else score < to_beat):
            return None
        by_id = {t.trial_id: t for t in candidates}
        members = [by_id[i] for i in weights]
        return members, [weights[m.trial_id] for m in members], score

    def _member_temperatures(self, outputs: dict[str, np.ndarray]) -> dict[str, float]:
        """Per trial id, the inverse temperature of its out-of-fold probabilities (where it pays)."""
        data = self.worker._data
        betas = {
            trial_id: fit_temperature(output, data.y, data.weights) for trial_id, output in outputs.items()
        }
        return {trial_id: beta for trial_id, beta in betas.items() if beta is not None}

    def _oof_score(self, output: np.ndarray, metric) -> float:
        data = self.worker._data
        rows = ~np.isnan(output if output.ndim == 1 else output[:, 0])
        weights = None if data.weights is None else data.weights[rows]
        return metric.compute(data.y[rows], output[rows], weights)

    def _temperature(
        self, members: list[TrialView], weights: list[float], member_betas: dict[str, float] | None = None
    ) -> float | None:
        """The inverse temperature for the classifier's probabilities, fitted on the blended
        out-of-fold probabilities of `members` (each scaled by its own temperature in
        `member_betas`, if any); None for regression or when it does not pay."""
        if self.problem.task == "regression":
            return None
        outputs = self._load_oof(members)
        if len(outputs) != len(members):
            return None
        for key, beta in (member_betas or {}).items():
            if key in outputs:
                outputs[key] = scaled_probabilities(outputs[key], beta)
        data = self.worker._data
        proba = blend([outputs[m.trial_id] for m in members], weights)
        return fit_temperature(proba, data.y, data.weights)

    def _refit(
        self,
        members: list[TrialView],
        weights: list[float],
        within_budget: bool = True,
        reserve_s: float = 0.0,
        member_betas: dict[str, float] | None = None,
    ):
        """Refit `members` on all training rows in the refit process, each member's probabilities
        scaled by its temperature in `member_betas` and the whole by one fitted on their blended
        out-of-fold probabilities (classification); the result holds that `temperature`."""
        limit = self.engine.config.default_trial_time_limit_s
        time_left_s = self._refit_time_left_s(reserve_s) if within_budget else None
        if time_left_s is not None:
            if refit_estimate_s(members) > time_left_s:
                return None, "no time left to refit " + ("the ensemble" if len(members) > 1 else "this trial")
            limit = max(time_left_s, 3.0)
        temperature = self._temperature(members, weights, member_betas)
        request = {
            "members": [
                {"family": m.family, "params": m.params, "temperature": (member_betas or {}).get(m.trial_id)}
                for m in members
            ],
            "weights": weights,
            "importances": True,
            "temperature": temperature,
            "time_limit_s": limit,
        }
        outcome = self.worker.run(
            "refit",
            request,
            time_limit_s=limit,
            memory_limit_bytes=self.spec.trial_memory_limit_bytes
            or self.engine.config.default_trial_memory_limit_bytes,
        )
        if outcome.status != "done":
            return None, str(outcome.value)
        return {**outcome.value, "temperature": temperature}, ""

    def _package(self, members, weights, score, result) -> dict:
        problem, spec = self.problem, self.spec
        estimator = pickle.loads(result["estimator"])
        if problem.task != "regression":
            estimator = DecodedClassifier(estimator, list(problem.classes))
        is_ensemble = len(members) > 1
        winner = "ensemble" if is_ensemble else members[0].trial_id
        params = {"family": "ensemble" if is_ensemble else members[0].family}
        if is_ensemble:
            params["members"] = [
                {"trial_id": m.trial_id, "family": m.family, "weight": w, "params": m.params}
                for m, w in zip(members, weights, strict=True)
            ]
        else:
            params.update(members[0].params)
        if result.get("temperature") is not None:  # probabilities: softmax(temperature_beta * log p)
            params["temperature_beta"] = result["temperature"]
        test_metrics = result.get("test_metrics", {})
        bundle = ModelBundle(
            estimator=estimator,
            task=problem.task,
            inputs=[ColumnSpec(name, kind) for name, kind in problem.features.items()],
            label_column=problem.label,
            class_labels=list(problem.classes),
            metrics=test_metrics or {spec.metric: score},
            params=params,
            feature_importances=result.get("importances", {}),
        )
        data, sha = dump_bundle(bundle)
        key = f"trainer/searches/{self.search_id}/model.bundle"
        self.engine.store.put(key, data, expected_sha256=sha)
        summary = {
            "best_trial_id": winner,
            "family": params["family"],
            "score": score,
            "score_std": None if is_ensemble else members[0].score_std,
            "test_metrics": test_metrics,
            "ensemble_members": [
                {"trial_id": m.trial_id, "family": m.family, "weight": w}
                for m, w in zip(members, weights, strict=True)
            ]
            if is_ensemble
            else [],
            "artifact_uri": self.engine.store.uri(key),
            "artifact_sha256": sha,
            "feature_importances": result.get("importances", {}),
            "registered_model": None,
            "registration_error": "",
            "registration_pending": False,
            "fit_s": sum(m.fit_s for m in members),
            "predict_latency_s": sum(m.predict_latency_s for m in members),
        }
        if spec.register_model_name:
            summary.update(
                register(
                    self.engine.registry,
                    spec.to_dict(),
                    self.search_id,
                    summary,
                    bundle,
                    data,
                    QUICK_RETRY_DELAYS_S,
                )
            )
        return summary


_STATE_NAMES = {"COMPLETE": "COMPLETE", "PRUNED": "PRUNED", "FAIL": "FAILED"}


def _started(study) -> int:
    """Trials started so far (enqueued portfolio configurations waiting to run do not count)."""
    return sum(1 for t in study.get_trials(deepcopy=False) if t.state.name != "WAITING")


def family_failures(trials: list[TrialView]) -> list[dict]:
    """Per family with no completed trial (or with failures): failed count and the latest reason."""
    failed = Counter(t.family for t in trials if t.state == "FAILED")
    out = []
    for family, count in failed.items():
        last = max((t for t in trials if t.family == family and t.state == "FAILED"), key=lambda t: t.number)
        out.append(
            {
                "family": family,
                "failed_trials": count,
                "reason": last.failure_reason or "the worker running it stopped sending heartbeats",
            }
        )
    return out
