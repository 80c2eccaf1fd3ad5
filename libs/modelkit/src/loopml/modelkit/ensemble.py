"""A weighted average of fitted models: what Caruana ensemble selection produces."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator


class WeightedEnsemble(BaseEstimator):
    """Averages members' probabilities (classification) or predictions (regression) with weights.

    Members are fitted estimators that take the same DataFrame; `classes_` orders probability columns.
    """

    def __init__(self, members: list, weights: list[float], task: str, classes=None):
        self.members = members
        self.weights = weights
        self.task = task
        self.classes = classes

    @property
    def classes_(self):
        return np.asarray(self.classes)

    def fit(self, X, y=None):  # members come fitted; refitting is the trainer's job
        return self

    def _average(self, outputs: list[np.ndarray]) -> np.ndarray:
        weights = np.asarray(self.weights, dtype=float)
        weights = weights / weights.sum()
        return sum(w * o for w, o in zip(weights, outputs, strict=True))

    def predict_proba(self, X) -> np.ndarray:
        if self.task == "regression":
            raise AttributeError("a regression ensemble has no predict_proba")
        return self._average([np.asarray(m.predict_proba(X), dtype=float) for m in self.members])

    def predict(self, X) -> np.ndarray:
        if self.task == "regression":
            return self._average([np.asarray(m.predict(X), dtype=float) for m in self.members])
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class DecodedClassifier(BaseEstimator):
    """A classifier trained on class codes 0..k-1, answering with the original labels."""

    def __init__(self, estimator, classes: list):
        self.estimator = estimator
        self.classes = classes

    @property
    def classes_(self):
        return np.asarray(self.classes, dtype=object)

    def fit(self, X, y=None):  # comes fitted
        return self

    def predict_proba(self, X) -> np.ndarray:
        return np.asarray(self.estimator.predict_proba(X), dtype=float)

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


#: Added to probabilities before the log, so a zero probability stays finite.
LOG_EPS = 1e-12


def scaled_probabilities(proba: np.ndarray, beta: float) -> np.ndarray:
    """softmax(beta * log(p + eps)) row by row: temperature scaling with inverse temperature beta."""
    logits = beta * np.log(np.asarray(proba, dtype=float) + LOG_EPS)
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


class TemperatureScaled(BaseEstimator):
    """A fitted classifier whose probabilities are rescaled by one inverse temperature `beta`.

    Every row keeps its order of classes, so the predicted labels and ROC AUC do not change; the
    log loss does (the trainer fits `beta` on out-of-fold probabilities). `classes` orders the
    probability columns of `estimator`.
    """

    def __init__(self, estimator, beta: float, classes):
        self.estimator = estimator
        self.beta = beta
        self.classes = classes

    @property
    def classes_(self):
        return np.asarray(self.classes)

    def fit(self, X, y=None):  # comes fitted
        return self

    def predict_proba(self, X) -> np.ndarray:
        proba = np.asarray(self.estimator.predict_proba(X), dtype=float)
        return scaled_probabilities(proba / proba.sum(axis=1, keepdims=True), self.beta)

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
