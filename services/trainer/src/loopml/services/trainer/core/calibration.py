"""Temperature scaling of the final model's class probabilities.

One inverse temperature `beta` is fitted on the out-of-fold probabilities of the chosen model (the
blend, for an ensemble); predictions become softmax(beta * log p). Every row's order of classes is
kept, so ROC AUC, accuracy and the predicted labels do not change; log loss does. Boosted trees and
small-data MLPs are often over-confident, and a blend of models under-confident, which this corrects.

The packaged form is `loopml.modelkit.ensemble.TemperatureScaled`, so the inference service
unpickles it with modelkit alone (no trainer code).
"""

from __future__ import annotations

import numpy as np

from loopml.modelkit.ensemble import LOG_EPS, TemperatureScaled, scaled_probabilities

#: The search range of log(beta): temperatures from about 1/20 to 20.
LOG_BETA_BOUNDS = (-3.0, 3.0)
#: Rows the temperature is fitted on, at most (a sample of larger OOF sets).
MAX_ROWS = 5_000
#: A temperature is kept only when it lowers the out-of-fold log loss by at least this share.
MIN_RELATIVE_GAIN = 0.002


def _log_loss(proba: np.ndarray, y: np.ndarray, weights: np.ndarray | None) -> float:
    picked = np.clip(proba[np.arange(len(y)), y], 1e-15, 1.0)
    return float(-np.average(np.log(picked), weights=weights))


def fit_temperature(proba: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float | None:
    """The inverse temperature that minimises the (weighted) log loss of `proba` (rows x classes,
    NaN rows ignored) against class codes `y`; None when it does not pay (too little gain, too few
    rows, or a single class present)."""
    from scipy.optimize import minimize_scalar
    from scipy.special import logsumexp

    proba = np.asarray(proba, dtype=float)
    rows = ~np.isnan(proba).any(axis=1)
    if weights is not None:
        rows &= np.asarray(weights) > 0
    if rows.sum() < 20 or len(np.unique(np.asarray(y)[rows])) < 2:
        return None
    rows = np.flatnonzero(rows)
    if len(rows) > MAX_ROWS:  # one parameter: a seeded sample is as good and keeps the finish quick
        rows = np.sort(np.random.default_rng(0).choice(rows, size=MAX_ROWS, replace=False))
    proba, y = proba[rows], np.asarray(y)[rows]
    w = None if weights is None else np.asarray(weights, dtype=float)[rows]
    proba = proba / proba.sum(axis=1, keepdims=True)  # what the packaged calibrator expects
    log_p = np.log(proba + LOG_EPS)  # computed once; each step only rescales it
    true_log_p = log_p[np.arange(len(y)), y]

    def scaled_loss(log_beta: float) -> float:
        beta = np.exp(log_beta)
        return float(-np.average(beta * true_log_p - logsumexp(beta * log_p, axis=1), weights=w))

    before = _log_loss(proba, y, w)
    found = minimize_scalar(scaled_loss, bounds=LOG_BETA_BOUNDS, method="bounded", options={"xatol": 1e-4})
    beta = float(np.exp(found.x))
    after = _log_loss(scaled_probabilities(proba, beta), y, w)
    if not np.isfinite(after) or after > before * (1.0 - MIN_RELATIVE_GAIN):
        return None
    return beta


def blend(outputs: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """The weighted average of members' out-of-fold probabilities (as `WeightedEnsemble` averages)."""
    total = np.asarray(weights, dtype=float)
    total = total / total.sum()
    return sum(w * np.asarray(o, dtype=float) for w, o in zip(total, outputs, strict=True))


def temperature_scaled(estimator, beta: float, n_classes: int):
    """`estimator` (a fitted classifier over class codes 0..n_classes-1) with its probabilities
    scaled by `beta`."""
    return TemperatureScaled(estimator, float(beta), classes=list(range(n_classes)))
