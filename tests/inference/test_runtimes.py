"""Runtimes give the same answers as the bundle's own predict, whatever path they take."""

from __future__ import annotations

import numpy as np
import pandas as pd

from loopml.modelkit import ColumnSpec, ModelBundle
from loopml.services.inference.core.runtimes import NumericMatrixRuntime, SklearnRuntime, runtime_for
from tests.inference import models


def _frame(rows: int = 7) -> pd.DataFrame:
    return pd.DataFrame(np.random.default_rng(2).normal(size=(rows, 4)), columns=[f"f{i}" for i in range(4)])


def test_xgboost_binary_multiclass_and_regression_match_the_bundle():
    from xgboost import XGBClassifier, XGBRegressor

    train = _frame(200)
    inputs = [ColumnSpec(c, "numeric") for c in train.columns]
    three = np.digitize(train["f0"], [-0.5, 0.5])
    bundles = [
        models.xgb_classifier(),
        ModelBundle(
            XGBClassifier(n_estimators=5, n_jobs=1).fit(train, three),
            "multiclass",
            inputs,
            "y",
            class_labels=["a", "b", "c"],
        ),
        ModelBundle(
            XGBRegressor(n_estimators=5, n_jobs=1).fit(train, train["f1"] * 3), "regression", inputs, "y"
        ),
    ]
    frame = _frame()
    frame.iloc[2, 1] = np.nan
    for bundle in bundles:
        runtime = runtime_for(bundle)
        assert isinstance(runtime, NumericMatrixRuntime)
        got = runtime.predict(runtime.prepare(frame))
        want = bundle.predict(frame)
        assert list(got.predictions) == list(want.predictions) or np.allclose(
            got.predictions, want.predictions
        )
        if want.probabilities is not None:
            np.testing.assert_allclose(got.probabilities, want.probabilities, rtol=1e-6)


def test_pipelines_take_the_dataframe_path(bundles):
    runtime = runtime_for(bundles["classifier"])
    assert type(runtime) is SklearnRuntime
    frame = pd.DataFrame(models.rows())
    assert list(runtime.predict(frame).predictions) == list(bundles["classifier"].predict(frame).predictions)
