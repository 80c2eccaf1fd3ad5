"""Choose the trainer's default portfolio offline (writes services/trainer/.../core/portfolio.json).

How: for every model family, its hand-written default plus `--random` configurations drawn from the
family's search space are scored by 3-fold cross-validation on small public datasets bundled with
scikit-learn (no download): breast_cancer, wine, iris, digits (subsample) for classification;
diabetes and friedman1 (synthetic) for regression. Scores are normalised per dataset to [0, 1]
(best = 1). Then a greedy selection builds the ordered portfolio: each step adds the configuration
that most raises the mean over datasets of the best normalised score reached so far (the
"portfolio" idea of auto-sklearn 2 / AutoGluon's zeroshot configs), until `--size` entries; every
family keeps at least one entry so that a search over any family subset starts from a default.

    .venv/bin/python bench/portfolio/build_portfolio.py --random 3 --size 10 [--write]

This is a small offline run (minutes on 2 cores), not a large meta-learning study: see
docs/benchmarks.md for what it used and what a bigger run would add.
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one thread, as trial workers
    os.environ.setdefault(_name, "1")

import argparse
import json
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from loopml.services.trainer.core.evaluate import evaluate, make_folds
from loopml.services.trainer.core.execution import encode_target
from loopml.services.trainer.core.metrics import DEFAULT_METRIC, get_metric
from loopml.services.trainer.core.portfolio import PORTFOLIO_FILE, load_portfolio
from loopml.services.trainer.core.tasks import Problem, TabularTask
from loopml.services.trainer.core.tasks.tabular import FAMILIES


def datasets() -> dict[str, tuple[pd.DataFrame, str]]:
    from sklearn import datasets as d

    out = {}
    for name, loader in (
        ("breast_cancer", d.load_breast_cancer),
        ("wine", d.load_wine),
        ("iris", d.load_iris),
        ("digits", d.load_digits),
    ):
        frame = loader(as_frame=True).frame
        if name == "digits":
            frame = frame.sample(600, random_state=0)
        out[name] = (frame.reset_index(drop=True), "target")
    out["diabetes"] = (d.load_diabetes(as_frame=True).frame, "target")
    X, y = d.make_friedman1(n_samples=500, random_state=0)
    friedman = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    friedman["target"] = y
    out["friedman1"] = (friedman, "target")
    return out


def problem_of(frame: pd.DataFrame, label: str, name: str) -> Problem:
    task = (
        "regression"
        if name in ("diabetes", "friedman1")
        else ("binary" if frame[label].nunique() == 2 else "multiclass")
    )
    classes = sorted(frame[label].unique().tolist()) if task != "regression" else []
    features = {c: "numeric" for c in frame.columns if c != label}
    return Problem(task, label, features, classes, len(frame))


def candidates(task: TabularTask, problem: Problem, n_random: int, seed: int) -> list[tuple[str, dict, str]]:
    space = task.space(problem, list(FAMILIES))
    out = []
    defaults = {e["family"]: e for e in load_portfolio() if problem.task in e["tasks"]}
    for family in FAMILIES:
        names = {p.name for p in space.families[family]}
        out.append((family, {k: v for k, v in defaults[family]["params"].items() if k in names}, "default"))
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed + len(out)))
        for i in range(n_random):
            trial = study.ask()
            trial.suggest_categorical("family", [family])
            params = {p.name: p.suggest(trial, family) for p in space.families[family]}
            out.append((family, params, f"random{i}"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--random", type=int, default=3, help="random configurations per family")
    parser.add_argument("--size", type=int, default=10, help="portfolio entries per task kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help="write portfolio.json (else print it)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    task = TabularTask()
    kinds = {
        "classification": ["breast_cancer", "wine", "iris", "digits"],
        "regression": ["diabetes", "friedman1"],
    }
    data = datasets()
    portfolio = []
    for kind, names in kinds.items():
        first = problem_of(*data[names[0]], names[0])
        pool = candidates(
            task,
            first if kind == "regression" else Problem("binary", "t", {}, [0, 1]),
            args.random,
            args.seed,
        )
        scores = np.full((len(pool), len(names)), np.nan)
        for j, name in enumerate(names):
            frame, label = data[name]
            problem = problem_of(frame, label, name)
            metric = get_metric(DEFAULT_METRIC[problem.task])
            y = encode_target(problem, frame[label])
            folds = make_folds(problem, y, 3, 0.0, args.seed)
            for i, (family, params, tag) in enumerate(pool):
                started = time.perf_counter()
                try:
                    outcome = evaluate(task, problem, family, params, frame, y, folds, metric.name, args.seed)
                    scores[i, j] = outcome.score if metric.higher_is_better else -outcome.score
                except Exception as exc:  # noqa: BLE001 - a failing candidate just scores nothing
                    print(f"  {name} {family} {tag}: failed ({exc})")
                print(
                    f"{kind} {name:14s} {family:24s} {tag:8s} {scores[i, j]:.5f} {time.perf_counter() - started:.1f}s",
                    flush=True,
                )
        best, worst = np.nanmax(scores, axis=0), np.nanmin(scores, axis=0)
        normalised = np.nan_to_num((scores - worst) / np.where(best > worst, best - worst, 1.0), nan=0.0)
        chosen: list[int] = []
        reached = np.zeros(len(names))
        while len(chosen) < min(args.size, len(pool)):
            missing = set(FAMILIES) - {pool[i][0] for i in chosen}
            room = args.size - len(chosen)
            options = [
                i
                for i in range(len(pool))
                if i not in chosen and (len(missing) < room or pool[i][0] in missing)
            ]
            gains = [np.maximum(reached, normalised[i]).mean() + 1e-6 * normalised[i].mean() for i in options]
            pick = options[int(np.argmax(gains))]
            chosen.append(pick)
            reached = np.maximum(reached, normalised[pick])
        tasks = ["regression"] if kind == "regression" else ["binary", "multiclass"]
        for i in chosen:
            family, params, tag = pool[i]
            portfolio.append(
                {
                    "family": family,
                    "tasks": tasks,
                    "params": params,
                    "source": tag,
                    "mean_normalised_score": round(float(normalised[i].mean()), 4),
                }
            )
    document = {
        "comment": "Default configurations tried first, in order. Chosen by bench/portfolio/build_portfolio.py "
        f"(--random {args.random} --size {args.size} --seed {args.seed}) on scikit-learn's bundled datasets.",
        "configs": portfolio,
    }
    text = json.dumps(document, indent=1, default=lambda v: v.item() if hasattr(v, "item") else str(v))
    if args.write:
        Path(PORTFOLIO_FILE).write_text(text + "\n")
        print(f"wrote {PORTFOLIO_FILE}")
    else:
        print(text)


if __name__ == "__main__":
    main()
