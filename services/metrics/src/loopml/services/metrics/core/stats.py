"""Model-quality metrics and drift statistics, in NumPy (no scikit-learn at serving time)."""

from __future__ import annotations

import math

import numpy as np

EPS = 1e-4  # floor of a bin share in PSI (an empty bin would make it infinite)


def label_key(x) -> str:
    """A class label or category as text, so that 1, 1.0 and "1" name the same class, and so do
    True, "true" and 1 (booleans are 1 / 0: profiles and signatures may type them either way)."""
    if isinstance(x, bool):
        return "1" if x else "0"
    if isinstance(x, (int, float)) and float(x).is_integer():
        return str(int(x))
    text = str(x)
    lowered = text.lower()
    return "1" if lowered == "true" else "0" if lowered == "false" else text


def accuracy(actual: list, predicted: list) -> float:
    return float(np.mean([label_key(a) == label_key(p) for a, p in zip(actual, predicted, strict=False)]))


def roc_auc_binary(y: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney form with average ranks for ties; NaN when one class is absent."""
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    if pos == 0 or neg == 0:
        return math.nan
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    sorted_scores = score[order]
    i = 0
    while i < len(score):  # average ranks over ties
        j = i
        while j + 1 < len(score) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1
        i = j + 1
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def roc_auc(actual: list, probs: np.ndarray, classes: list) -> float:
    """Binary: AUC of the second class's probability; multiclass: one-vs-rest macro average."""
    keys = [label_key(c) for c in classes]
    y = np.array([keys.index(label_key(a)) if label_key(a) in keys else -1 for a in actual])
    if len(keys) == 2:
        return roc_auc_binary((y == 1).astype(int), probs[:, 1])
    aucs = [roc_auc_binary((y == k).astype(int), probs[:, k]) for k in range(len(keys))]
    aucs = [a for a in aucs if not math.isnan(a)]
    return float(np.mean(aucs)) if aucs else math.nan


def log_loss(actual: list, probs: np.ndarray, classes: list) -> float:
    keys = [label_key(c) for c in classes]
    idx = np.array([keys.index(label_key(a)) if label_key(a) in keys else -1 for a in actual])
    p = np.where(idx >= 0, probs[np.arange(len(idx)), np.clip(idx, 0, None)], 0.0)
    return float(-np.mean(np.log(np.clip(p, 1e-15, 1.0))))


def rmse(actual: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.sqrt(np.mean((actual - predicted) ** 2)))


def mae(actual: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean(np.abs(actual - predicted)))


def psi(reference: np.ndarray, live: np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins."""
    r = np.clip(reference, EPS, None)
    lv = np.clip(live, EPS, None)
    return float(np.sum((lv - r) * np.log(lv / r)))


def ks_against_cdf(live: np.ndarray, knots_x: np.ndarray, knots_cdf: np.ndarray) -> float:
    """sup |F_live - F_ref|, with F_ref piecewise linear through (knots_x, knots_cdf)."""
    live = np.sort(live)
    n = len(live)
    ref_at_live = np.interp(live, knots_x, knots_cdf, left=0.0, right=1.0)
    upper = np.arange(1, n + 1) / n  # F_live just after each point
    lower = np.arange(0, n) / n  # ... and just before
    d = max(np.max(np.abs(upper - ref_at_live)), np.max(np.abs(ref_at_live - lower)))
    live_at_knots = np.searchsorted(live, knots_x, side="right") / n
    return float(max(d, np.max(np.abs(live_at_knots - knots_cdf))))


def ks_p_value(d: float, n: int) -> float:
    """Asymptotic one-sample Kolmogorov p-value (the reference is a fixed summary)."""
    if n <= 0:
        return math.nan
    lam = (math.sqrt(n) + 0.12 + 0.11 / math.sqrt(n)) * d
    if lam < 1e-3:
        return 1.0
    total = sum(2 * (-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
    return float(min(1.0, max(0.0, total)))
