"""Scoring one configuration: cross-validation (or holdout) with out-of-fold predictions.

Runs inside a trial worker process. `report(step, score)` returns True when the pruner wants the
trial stopped. Families that train in rounds or epochs (the task's `staged_families`) report while
the first fold trains: step = boosting rounds or epochs done, score = that fold's validation score.
The others report after each fold: step = folds done - 1, score = running mean. The pruner compares
a trial only with trials of its own family, so the two meanings of a step never meet.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from loopml.services.trainer.core.metrics import REPORTED, get_metric, score_all
from loopml.services.trainer.core.tasks.base import Problem, Task


class TrialPruned(Exception):
    """The pruner stopped the trial after `step` folds."""


@dataclass
class Outcome:
    score: float
    score_std: float
    metrics: dict[str, float]
    oof: np.ndarray  # rows x classes (classification) or rows (regression); NaN where not predicted
    fit_s: float
    predict_latency_s: float  # per row
    extra: dict = field(default_factory=dict)


def make_folds(
    problem: Problem, y: np.ndarray, folds: int, holdout: float, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train rows, validation rows) pairs: k folds, or one holdout split when `holdout` > 0."""
    from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

    index = np.arange(len(y))
    classification = problem.task != "regression"
    if holdout > 0:
        stratify = y if classification and np.min(np.bincount(y)) >= 2 else None
        train, valid = train_test_split(index, test_size=holdout, random_state=seed, stratify=stratify)
        return [(np.sort(train), np.sort(valid))]
    if classification and np.min(np.bincount(y)) >= folds:
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    else:
        splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    return [(train, valid) for train, valid in splitter.split(index, y)]


def predict_output(problem: Problem, estimator, frame: pd.DataFrame) -> np.ndarray:
    """Probabilities over all classes (columns in class order) or regression predictions."""
    if problem.task == "regression":
        return np.asarray(estimator.predict(frame), dtype=float)
    proba = np.asarray(estimator.predict_proba(frame), dtype=float)
    seen = np.asarray(estimator.classes_, dtype=int)
    if len(seen) == len(problem.classes):
        return proba
    full = np.zeros((len(frame), len(problem.classes)))  # a fold missed some class
    full[:, seen] = proba
    return full


_UNITS = {"mlp": "epochs"}


def _rows(weights: np.ndarray | None, index) -> np.ndarray | None:
    return None if weights is None else weights[index]


def evaluate(
    task: Task,
    problem: Problem,
    family: str,
    params: dict,
    frame: pd.DataFrame,
    y: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    metric: str,
    seed: int,
    report: Callable[[int, float], bool] | None = None,
    weights: np.ndarray | None = None,
) -> Outcome:
    """Score one configuration; `weights` (sample weights, or None) weight both the fits and the scores."""
    X = task.features(problem, frame)
    n_classes = len(problem.classes)
    oof = np.full((len(y), n_classes) if problem.task != "regression" else len(y), np.nan)
    scores, fit_s, predict_s, predicted_rows = [], 0.0, 0.0, 0
    scorer = get_metric(metric)
    staged = report is not None and family in task.staged_families
    fold_reports = report is not None and not staged
    for step, (train, valid) in enumerate(folds):
        estimator = task.build(problem, family, params, seed)
        started = time.perf_counter()
        if staged and step == 0:

            def on_stage(done: int, output: np.ndarray, truth=y[valid], w=_rows(weights, valid)) -> bool:
                return report(done, float(scorer.compute(truth, output, w)))

            stopped = task.fit_in_stages(
                estimator,
                family,
                X.iloc[train],
                y[train],
                X.iloc[valid],
                on_stage,
                lambda model, rows: predict_output(problem, model, rows),
                _rows(weights, train),
            )
            if stopped is not None:
                raise TrialPruned(f"pruned after {stopped} {_UNITS.get(family, 'rounds')} of the first fold")
        else:
            task.fit(estimator, family, X.iloc[train], y[train], _rows(weights, train))
        fit_s += time.perf_counter() - started
        started = time.perf_counter()
        output = predict_output(problem, estimator, X.iloc[valid])
        predict_s += time.perf_counter() - started
        predicted_rows += len(valid)
        oof[valid] = output
        scores.append(scorer.compute(y[valid], output, _rows(weights, valid)))
        if fold_reports and step < len(folds) - 1 and report(step, float(np.mean(scores))):
            raise TrialPruned(f"pruned after {step + 1} of {len(folds)} folds (score {np.mean(scores):.5g})")
    mask = ~np.isnan(oof if oof.ndim == 1 else oof[:, 0])
    names = dict.fromkeys((metric,) + REPORTED[problem.task])
    metrics = score_all(problem.task, names, y[mask], oof[mask], _rows(weights, mask))
    return Outcome(
        score=float(np.mean(scores)),
        score_std=float(np.std(scores)),
        metrics=metrics,
        oof=oof,
        fit_s=fit_s / len(folds),
        predict_latency_s=predict_s / max(predicted_rows, 1),
    )
