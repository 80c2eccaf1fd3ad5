"""Small real models for the inference tests, built as loopml ModelBundles."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from loopml.modelkit import ColumnSpec, ModelBundle

INPUTS = [
    ColumnSpec("age", "numeric", nullable=True),
    ColumnSpec("income", "numeric", nullable=False),
    ColumnSpec("city", "categorical", nullable=True),
]


def training_frame(rows: int = 200, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.uniform(18, 80, rows),
            "income": rng.uniform(0, 100, rows),
            "city": rng.choice(np.array(["paris", "lyon", "nice"], dtype=object), rows),
        }
    )
    label = np.where(frame["income"] + (frame["city"] == "paris") * 30 > 60, "yes", "no")
    return frame, label


def _preprocess() -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("num", SimpleImputer(strategy="mean"), ["age", "income"]),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="?"), OneHotEncoder(handle_unknown="ignore")
                ),
                ["city"],
            ),
        ]
    )


def classifier(seed: int = 0, flip: bool = False) -> ModelBundle:
    """Binary classifier of yes/no; `flip` trains it on inverted labels (a visibly different version)."""
    frame, label = training_frame(seed=seed)
    if flip:
        label = np.where(label == "yes", "no", "yes")
    model = make_pipeline(_preprocess(), LogisticRegression(max_iter=500)).fit(frame, label)
    return ModelBundle(model, "binary", list(INPUTS), "buys", class_labels=list(model.classes_))


def regressor() -> ModelBundle:
    frame, _ = training_frame()
    target = frame["income"] * 2.0 + 1.0
    model = make_pipeline(_preprocess(), LinearRegression()).fit(frame, target)
    return ModelBundle(model, "regression", list(INPUTS), "spend")


def xgb_classifier(features: int = 4) -> ModelBundle:
    """An XGBoost classifier over `features` numeric columns f0..fN (the benchmark's model shape)."""
    from xgboost import XGBClassifier

    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(300, features)), columns=[f"f{i}" for i in range(features)])
    label = (frame.sum(axis=1) > 0).astype(int).to_numpy()
    model = XGBClassifier(n_estimators=10, max_depth=3, n_jobs=1).fit(frame, label)
    inputs = [ColumnSpec(f"f{i}", "numeric", nullable=True) for i in range(features)]
    return ModelBundle(model, "binary", inputs, "y", class_labels=[0, 1], flavor="xgboost")


class BrokenEstimator:
    """Unpickles fine but fails every prediction (a bad version for the reload tests)."""

    def predict_proba(self, frame):
        raise RuntimeError("this model is broken")

    predict = predict_proba


class PickyEstimator:
    """Answers the smoke row (x == 0) only: any other value is refused, like an unseen category."""

    def predict_proba(self, frame):
        if (frame["x"] != 0).any():
            raise ValueError("x must be 0")
        return [[1.0, 0.0]] * len(frame)


class SlowEstimator:
    """Takes `seconds` per call whatever the rows (a model call's fixed cost, exaggerated); each
    row's probability of "yes" is its `x` value, so answers show which row they belong to."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.calls = 0

    def predict_proba(self, frame):
        import time

        self.calls += 1
        time.sleep(self.seconds)
        x = np.asarray(frame["x"], dtype=float)
        return np.column_stack([1.0 - x, x])


class BulkyEstimator:
    """A tiny artifact that grows `megabytes` of memory when unpickled (like a model whose
    structures are rebuilt on load): its measured memory is far above its artifact size."""

    def __init__(self, megabytes: int):
        self.megabytes = megabytes
        self.table = None

    def __getstate__(self):
        return {"megabytes": self.megabytes}

    def __setstate__(self, state):
        self.megabytes = state["megabytes"]
        self.table = np.ones(self.megabytes * 1024 * 1024 // 8)  # written, so resident

    def predict_proba(self, frame):
        return np.tile([0.5, 0.5], (len(frame), 1))


def bulky(megabytes: int) -> ModelBundle:
    return ModelBundle(
        BulkyEstimator(megabytes), "binary", [ColumnSpec("x", "numeric")], "y", class_labels=["no", "yes"]
    )


def slow(seconds: float = 0.05) -> ModelBundle:
    return ModelBundle(
        SlowEstimator(seconds), "binary", [ColumnSpec("x", "numeric")], "y", class_labels=["no", "yes"]
    )


def broken() -> ModelBundle:
    return ModelBundle(BrokenEstimator(), "binary", list(INPUTS), "buys", class_labels=["no", "yes"])


def rows(n: int = 3, seed: int = 5) -> dict[str, list]:
    frame, _ = training_frame(n, seed=seed)
    return {name: frame[name].tolist() for name in frame.columns}
