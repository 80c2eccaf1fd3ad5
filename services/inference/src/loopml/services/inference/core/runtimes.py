"""Model runtimes: how a deserialized bundle is called. One small class per flavor.

`prepare` turns the validated DataFrame (or, for the numeric fast path, the request's matrix) into
what the estimator eats; `predict` runs it. Dynamic batching merges prepared inputs, so a runtime
also knows how to `concat` them and how many rows one holds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from loopml.modelkit import ModelBundle, Prediction

NUMERIC = {"numeric", "integer", "boolean"}


class SklearnRuntime:
    """Any estimator following the scikit-learn protocol on a DataFrame (pipelines, ensembles, MLP)."""

    accepts_matrix = False

    def __init__(self, bundle: ModelBundle):
        self.bundle = bundle
        self._labels = np.asarray(bundle.class_labels, dtype=object)

    def prepare(self, data):
        return data

    def rows(self, data) -> int:
        return len(data)

    def concat(self, parts: list):
        return pd.concat(parts, ignore_index=True)

    def slice(self, data, start: int, end: int):
        return data.iloc[start:end]

    def predict(self, data) -> Prediction:
        estimator = self.bundle.estimator
        if self.bundle.task == "regression":
            return Prediction(np.asarray(estimator.predict(data), dtype=float))
        probabilities = np.asarray(estimator.predict_proba(data), dtype=float)
        return Prediction(self._labels[probabilities.argmax(axis=1)], probabilities)


class NumericMatrixRuntime(SklearnRuntime):
    """An XGBoost estimator over numeric inputs only: fed a float32 matrix instead of a DataFrame
    (XGBoost's pandas path costs more than the prediction itself on small batches)."""

    accepts_matrix = True

    def prepare(self, data):
        if isinstance(data, pd.DataFrame):
            return data.to_numpy(dtype=np.float32, na_value=np.nan)
        return np.asarray(data, dtype=np.float32)

    def concat(self, parts: list):
        return np.concatenate(parts)

    def slice(self, data, start: int, end: int):
        return data[start:end]

    def __init__(self, bundle: ModelBundle):
        super().__init__(bundle)
        objective = getattr(bundle.estimator, "objective", None)
        # Objectives whose booster output is already the probability (or the regression value):
        # the booster is called directly, skipping the sklearn wrapper's per-call overhead.
        self._direct = objective in ("binary:logistic", "multi:softprob") or (
            bundle.task == "regression" and isinstance(objective, str) and objective.startswith("reg:")
        )
        self._booster = bundle.estimator.get_booster() if self._direct else None

    def predict(self, data) -> Prediction:
        if not self._direct:
            return super().predict(data)
        output = np.asarray(self._booster.inplace_predict(data), dtype=float)
        if self.bundle.task == "regression":
            return Prediction(output)
        probabilities = np.column_stack([1.0 - output, output]) if output.ndim == 1 else output
        return Prediction(self._labels[probabilities.argmax(axis=1)], probabilities)


def runtime_for(bundle: ModelBundle) -> SklearnRuntime:
    module = type(bundle.estimator).__module__
    if module.startswith("xgboost") and all(c.type in NUMERIC for c in bundle.inputs):
        return NumericMatrixRuntime(bundle)
    return SklearnRuntime(bundle)
