"""The metrics a search can optimise: how each is computed, its direction and the tasks it fits.

Classification metrics take class probabilities (n x k, columns in class order); regression
metrics take predictions. Every metric takes optional sample weights (the dataset's weight column).
Scores are the metric's own value; `higher_is_better` gives the direction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

CLASSIFICATION = ("binary", "multiclass")
REGRESSION = ("regression",)
DEFAULT_METRIC = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    tasks: tuple[str, ...]
    compute: Callable[..., float]  # (y, output, sample_weight=None) -> score

    def fits(self, task: str) -> bool:
        return task in self.tasks

    def worst(self) -> float:
        return -np.inf if self.higher_is_better else np.inf


def _labels(proba: np.ndarray) -> np.ndarray:
    return proba.argmax(axis=1)


def _average(y: np.ndarray, proba: np.ndarray) -> str:
    return "binary" if proba.shape[1] == 2 else "macro"


def _accuracy(y, proba, w=None):
    return float(np.average(_labels(proba) == y, weights=w))


def _balanced_accuracy(y, proba, w=None):
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(y, _labels(proba), sample_weight=w))


def _label_score(sklearn_name: str):
    """A metric over predicted labels (the most probable class), averaged as `_average` says."""

    def score(y, proba, w=None):
        import sklearn.metrics

        scorer = getattr(sklearn.metrics, sklearn_name)
        return float(
            scorer(
                y,
                _labels(proba),
                average=_average(y, proba),
                labels=range(proba.shape[1]),
                zero_division=0,
                sample_weight=w,
            )
        )

    return score


_f1 = _label_score("f1_score")
_precision = _label_score("precision_score")
_recall = _label_score("recall_score")


def _binary_roc_auc(positive: np.ndarray, scores: np.ndarray, w=None) -> float:
    """The area under the ROC curve (tied scores count half), as scikit-learn's `roc_auc_score`
    computes it, in one sort: the ensemble selection scores hundreds of blends per search, and the
    general function's input checks cost more than the sort on a few thousand rows."""
    weights = np.ones(len(scores)) if w is None else np.asarray(w, dtype=float)
    order = np.argsort(scores, kind="stable")
    ranked, positive, weights = scores[order], positive[order], weights[order]
    starts = np.concatenate(([0], np.flatnonzero(np.diff(ranked)) + 1))  # groups of tied scores
    pos = np.add.reduceat(np.where(positive, weights, 0.0), starts)
    neg = np.add.reduceat(np.where(positive, 0.0, weights), starts)
    total_pos, total_neg = pos.sum(), neg.sum()
    if total_pos <= 0 or total_neg <= 0:
        raise ValueError("Only one class present in y_true. ROC AUC score is not defined in that case.")
    below = np.cumsum(neg) - neg  # negative weight scored strictly lower than each group
    return float((pos * (below + 0.5 * neg)).sum() / (total_pos * total_neg))


def _roc_auc(y, proba, w=None):
    from sklearn.metrics import roc_auc_score

    if proba.shape[1] == 2:
        return _binary_roc_auc(np.asarray(y) == 1, np.asarray(proba[:, 1], dtype=float), w)
    present = np.unique(y)
    if len(present) < proba.shape[1]:  # a fold without some class: score the classes it has
        sub = proba[:, present]
        sub = sub / np.clip(sub.sum(axis=1, keepdims=True), 1e-12, None)
        return float(roc_auc_score(np.searchsorted(present, y), sub, multi_class="ovr", sample_weight=w))
    return float(roc_auc_score(y, proba, multi_class="ovr", sample_weight=w))


def _log_loss(y, proba, w=None):
    clipped = np.clip(proba, 1e-15, 1.0)
    clipped = clipped / clipped.sum(axis=1, keepdims=True)
    return float(-np.average(np.log(clipped[np.arange(len(y)), y]), weights=w))


def _rmse(y, pred, w=None):
    return float(np.sqrt(np.average((y - pred) ** 2, weights=w)))


def _mae(y, pred, w=None):
    return float(np.average(np.abs(y - pred), weights=w))


def _r2(y, pred, w=None):
    w = np.ones(len(y)) if w is None else np.asarray(w, dtype=float)
    total = np.sum(w * (y - np.average(y, weights=w)) ** 2)
    return float(1.0 - np.sum(w * (y - pred) ** 2) / total) if total > 0 else 0.0


def _mape(y, pred, w=None):
    return float(np.average(np.abs(y - pred) / np.maximum(np.abs(y), np.finfo(float).eps), weights=w))


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("accuracy", True, CLASSIFICATION, _accuracy),
        Metric("balanced_accuracy", True, CLASSIFICATION, _balanced_accuracy),
        Metric("f1", True, CLASSIFICATION, _f1),
        Metric("precision", True, CLASSIFICATION, _precision),
        Metric("recall", True, CLASSIFICATION, _recall),
        Metric("roc_auc", True, CLASSIFICATION, _roc_auc),
        Metric("log_loss", False, CLASSIFICATION, _log_loss),
        Metric("rmse", False, REGRESSION, _rmse),
        Metric("mae", False, REGRESSION, _mae),
        Metric("r2", True, REGRESSION, _r2),
        Metric("mape", False, REGRESSION, _mape),
    )
}

#: Metrics measured next to the search metric for every trial.
REPORTED = {
    "binary": ("roc_auc", "log_loss", "accuracy", "f1"),
    "multiclass": ("log_loss", "accuracy", "balanced_accuracy"),
    "regression": ("rmse", "mae", "r2"),
}


def get_metric(name: str) -> Metric:
    return METRICS[name]


def score_all(task: str, names, y: np.ndarray, output: np.ndarray, weights=None) -> dict[str, float]:
    """Every metric in `names` on one set of predictions (a metric that cannot be computed is skipped)."""
    scores = {}
    for name in names:
        try:
            scores[name] = METRICS[name].compute(y, output, weights)
        except (ValueError, ZeroDivisionError):  # e.g. one class only, or every weight zero
            continue
    return scores
