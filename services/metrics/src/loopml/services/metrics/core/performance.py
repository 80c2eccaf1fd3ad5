"""Online performance of model versions from predictions joined with their feedback."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from loopml.runtime.errors import InvalidArgument
from loopml.services.metrics.core import stats
from loopml.services.metrics.core.model import Score

CLASSIFICATION_METRICS = ("accuracy", "roc_auc", "log_loss")
REGRESSION_METRICS = ("rmse", "mae")
LOWER_IS_BETTER = {"log_loss", "rmse", "mae", "mape"}


def infer_task(records: list[dict[str, Any]], declared: str = "") -> str:
    """ "binary", "multiclass" or "regression": as declared by the registry, else from the data."""
    if declared:
        return declared
    for r in records:
        if r.get("classes"):
            return "binary" if len(r["classes"]) == 2 else "multiclass"
        preds = [p for p in r.get("predictions", []) if p is not None]
        if preds:
            return "regression" if all(isinstance(p, float) for p in preds) else "binary"
    return ""


def joined_rows(records: list[dict[str, Any]]) -> tuple[list, list, list[list[float]] | None, list]:
    """(actual, predicted, probabilities or None, classes) of the rows that got feedback."""
    actual, predicted, probs, classes = [], [], [], []
    for r in records:
        fb = r.get("feedback") or {}
        if not fb:
            continue
        k = len(r.get("classes", []))
        if k and not classes:
            classes = list(r["classes"])
        for row, (value, _business) in fb.items():
            if value is None or row >= r["row_count"]:
                continue
            actual.append(value)
            predicted.append(r["predictions"][row] if row < len(r["predictions"]) else None)
            p = r.get("probabilities") or []
            probs.append(p[row * k : (row + 1) * k] if k and len(p) >= (row + 1) * k else None)
    usable_probs = probs if probs and all(p is not None for p in probs) else None
    return actual, predicted, usable_probs, classes


def online_scores(records: list[dict[str, Any]], task: str, wanted: list[str]) -> tuple[list[Score], int]:
    """Scores over the joined rows, and how many rows had feedback."""
    actual, predicted, probs, classes = joined_rows(records)
    metrics = wanted or (list(REGRESSION_METRICS) if task == "regression" else list(CLASSIFICATION_METRICS))
    for i, m in enumerate(metrics):
        fits = REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS
        if task and m not in fits:
            raise InvalidArgument(f"metrics[{i}]", f"{m} does not fit a {task} model")
    if not actual:
        return [], 0
    out = []
    for m in metrics:
        value = score(m, actual, predicted, probs, classes)
        if value is not None and not math.isnan(value):
            out.append(Score(m, value))
    return out, len(actual)


def score(metric: str, actual, predicted, probs, classes) -> float | None:
    if metric == "accuracy":
        return stats.accuracy(actual, predicted)
    if metric in ("roc_auc", "log_loss"):
        if probs is None or not classes:
            return None  # needs probabilities
        matrix = np.asarray(probs, dtype=float)
        fn = stats.roc_auc if metric == "roc_auc" else stats.log_loss
        return fn(actual, matrix, classes)
    pairs = [
        (float(a), float(p))
        for a, p in zip(actual, predicted, strict=False)
        if p is not None and _numeric(a) and _numeric(p)
    ]
    if not pairs:
        return None
    a, p = np.array(pairs).T
    return stats.rmse(a, p) if metric == "rmse" else stats.mae(a, p)


def _numeric(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)
