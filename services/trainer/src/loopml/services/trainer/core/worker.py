"""Trials run in a separate worker process, so a trial that crashes, runs out of memory or time
only fails itself. One worker serves one search slot: it receives the data once, then trials one
after another. The parent enforces the per-trial time and memory limits by killing the process
(it is started again for the next trial).

Protocol over a pipe (parent -> worker): ("data", payload) once, then ("trial", request) or
("refit", request); the worker answers ("report", step, score) during a trial (the parent replies
with a bool: prune?) and finally ("done", result), ("pruned", reason) or ("failed", reason).
A refit sends ("partial", result) as soon as its model is fitted, then ("done", extras) once the
feature importances are computed: a refit that runs out of time during them keeps its model.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_CONTEXT = multiprocessing.get_context("spawn")  # no fork: the parent runs gRPC and DB threads


@dataclass
class TrialData:
    """What a worker needs once per search: the task, the problem, the training (and test) rows."""

    task: str
    problem: dict
    frame: Any  # pandas DataFrame of the training rows
    y: Any  # encoded target (class codes or floats)
    folds: list
    metric: str
    seed: int
    test_frame: Any = None
    test_y: Any = None
    #: Sample weights of the training and test rows (None: unweighted).
    weights: Any = None
    test_weights: Any = None
    #: Modules imported as soon as the process starts (the refit process pre-loads torch, xgboost).
    warm_imports: tuple[str, ...] = ()


@dataclass
class WorkerResult:
    status: str  # "done" | "pruned" | "failed"
    value: Any = None  # result dict ("done") or reason (otherwise)


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class TrialWorker:
    """The parent's handle on one worker process."""

    def __init__(self, data: TrialData):
        self._data = data
        self._process = None
        self._conn = None
        self._ready = False

    def prestart(self) -> None:
        """Start the process and hand it the data without waiting for it (it warms up meanwhile)."""
        if self._process is not None and self._process.is_alive():
            return
        parent, child = _CONTEXT.Pipe()
        self._process = _CONTEXT.Process(target=_worker_main, args=(child,), daemon=True, name="loopml-trial")
        self._process.start()
        child.close()
        self._conn = parent
        self._ready = False
        self._conn.send(("data", pickle.dumps(self._data, protocol=5)))

    def _ensure_started(self) -> None:
        if self._process is not None and self._process.is_alive() and self._ready:
            return
        self.prestart()
        # wait for the imports and the data, so that start-up does not count against a trial's limit
        deadline = time.monotonic() + 120
        while not self._conn.poll(0.1):
            if not self._process.is_alive() or time.monotonic() > deadline:
                raise OSError("the trial worker process did not start")
        self._conn.recv()
        self._ready = True

    def run(
        self,
        kind: str,
        request: dict,
        *,
        time_limit_s: float,
        memory_limit_bytes: int,
        on_report: Callable[[int, float], bool] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        on_tick: Callable[[], None] | None = None,
    ) -> WorkerResult:
        """Run one trial or refit; never raises for the trial's own failures."""
        try:
            self._ensure_started()
        except (EOFError, OSError) as exc:
            self.stop()
            return WorkerResult("failed", f"worker process did not start ({exc})")
        started = time.monotonic()
        partial = None  # what a refit already sent: the model, without importances
        try:
            self._conn.send((kind, request))
            while True:
                if memory_limit_bytes and _rss_bytes(self._process.pid) > memory_limit_bytes:
                    self.stop()
                    return WorkerResult(
                        "failed", f"memory limit exceeded ({memory_limit_bytes / 2**20:.1f} MiB)"
                    )
                if self._conn.poll(0.1):
                    message = self._conn.recv()
                    if message[0] == "report":
                        prune = bool(on_report(message[1], message[2])) if on_report else False
                        self._conn.send(prune)
                        continue
                    if message[0] == "partial":
                        partial = message[1]
                        continue
                    if message[0] == "done" and partial is not None:
                        return WorkerResult("done", {**partial, **message[1]})
                    return WorkerResult(message[0], message[1])
                if on_tick is not None:
                    on_tick()
                if should_stop():
                    self.stop()
                    return WorkerResult("failed", "stopped: the search was cancelled or ran out of time")
                if time.monotonic() - started > time_limit_s:
                    self.stop()
                    if partial is not None:  # the model is there; only its extras ran out of time
                        return WorkerResult("done", {**partial, "unfinished": "time limit exceeded"})
                    return WorkerResult("failed", f"time limit exceeded ({time_limit_s:.1f} s)")
                if not self._process.is_alive():
                    code = self._process.exitcode
                    self.stop()
                    return WorkerResult("failed", f"worker process died (exit code {code})")
        except (EOFError, BrokenPipeError, ConnectionResetError, OSError) as exc:
            self.stop()
            return WorkerResult("failed", f"worker process died ({type(exc).__name__})")

    def stop(self) -> None:
        if self._process is not None:
            if self._process.is_alive():
                self._process.kill()
            self._process.join(timeout=5)
            self._process = None
        self._ready = False
        if self._conn is not None:
            self._conn.close()
            self._conn = None


# -- inside the worker process ------------------------------------------------------------------


def _worker_main(conn) -> None:
    # one thread per trial: parallelism comes from worker processes (set before numpy/sklearn load)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"
    data: TrialData | None = None
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        kind, payload = message
        if kind == "data":
            data = pickle.loads(payload)
            import importlib

            import loopml.services.trainer.core.evaluate  # noqa: F401 - warm the imports

            for module in data.warm_imports:
                importlib.import_module(module)
            conn.send(("ready", None))
            continue
        try:
            handler = _run_trial if kind == "trial" else _run_refit
            conn.send(("done", handler(conn, data, payload)))
        except _Pruned as pruned:
            conn.send(("pruned", str(pruned)))
        except Exception as exc:  # noqa: BLE001 - any trial error is the trial's failure
            detail = traceback.format_exception_only(type(exc), exc)[-1].strip()
            conn.send(("failed", detail[:2000]))


class _Pruned(Exception):
    pass


def _run_trial(conn, data: TrialData, request: dict) -> dict:
    from loopml.services.trainer.core.evaluate import TrialPruned, evaluate
    from loopml.services.trainer.core.tasks import TASKS, Problem

    def report(step: int, score: float) -> bool:
        conn.send(("report", step, score))
        return bool(conn.recv())

    started = time.perf_counter()
    try:
        outcome = evaluate(
            TASKS[data.task](),
            Problem.from_dict(data.problem),
            request["family"],
            request["params"],
            data.frame,
            data.y,
            data.folds,
            data.metric,
            data.seed,
            report if request.get("report", True) else None,
            data.weights,
        )
    except TrialPruned as exc:
        raise _Pruned(str(exc)) from None
    return {
        "score": outcome.score,
        "score_std": outcome.score_std,
        "metrics": outcome.metrics,
        "oof": outcome.oof,
        "fit_s": outcome.fit_s,
        "predict_latency_s": outcome.predict_latency_s,
        "eval_s": time.perf_counter() - started,
    }


def _run_refit(conn, data: TrialData, request: dict) -> dict:
    """Fit the members on all training rows; an ensemble when there are several. The model and its
    test metrics go to the parent first (a "partial" message), then the feature importances, on a
    sample sized to end within `request["time_limit_s"]`."""
    started = time.monotonic()
    from loopml.modelkit.ensemble import WeightedEnsemble
    from loopml.services.trainer.core.evaluate import predict_output
    from loopml.services.trainer.core.metrics import REPORTED, score_all
    from loopml.services.trainer.core.tasks import TASKS, Problem

    task, problem = TASKS[data.task](), Problem.from_dict(data.problem)
    X = task.features(problem, data.frame)
    fitted = []
    for member in request["members"]:
        estimator = task.build(problem, member["family"], member["params"], data.seed)
        estimator = task.fit(estimator, member["family"], X, data.y, data.weights)
        if member.get("temperature") and problem.task != "regression":  # calibrated before blending
            from loopml.services.trainer.core.calibration import temperature_scaled

            estimator = temperature_scaled(estimator, member["temperature"], len(problem.classes))
        fitted.append(estimator)
    if len(fitted) == 1:
        estimator = fitted[0]
    else:
        estimator = WeightedEnsemble(
            fitted,
            request["weights"],
            problem.task,
            classes=list(range(len(problem.classes))) if problem.task != "regression" else None,
        )
    importance_source = estimator
    if request.get("temperature") and problem.task != "regression":
        from loopml.services.trainer.core.calibration import temperature_scaled

        estimator = temperature_scaled(estimator, request["temperature"], len(problem.classes))
    result: dict[str, Any] = {"estimator": pickle.dumps(estimator, protocol=5), "test_metrics": {}}
    if data.test_frame is not None and len(data.test_frame):
        output = predict_output(problem, estimator, task.features(problem, data.test_frame))
        names = dict.fromkeys((data.metric,) + REPORTED[problem.task])
        result["test_metrics"] = score_all(problem.task, names, data.test_y, output, data.test_weights)
    if not request.get("importances", True):
        return result
    conn.send(("partial", result))
    limit = request.get("time_limit_s")
    # a margin for sending the answer; None: no limit
    seconds = None if limit is None else limit - (time.monotonic() - started) - 0.5
    # the calibration keeps every row's class order, so it cannot change these
    return {"importances": task.feature_importances(problem, importance_source, X, data.y, seconds=seconds)}
