"""Runtimes give the same answers as the bundle's own predict, whatever path they take."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

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


def test_xgboost_with_early_stopping_predicts_with_the_best_iteration_like_the_bundle():
    from xgboost import XGBClassifier

    train = _frame(300)
    label = (train["f0"] + np.random.default_rng(4).normal(size=300) > 0).astype(int)
    model = XGBClassifier(n_estimators=200, learning_rate=0.5, early_stopping_rounds=3, n_jobs=1)
    model.fit(train[:200], label[:200], eval_set=[(train[200:], label[200:])], verbose=False)
    assert model.best_iteration + 1 < 200  # stopped early: fewer trees than were built
    bundle = ModelBundle(
        model, "binary", [ColumnSpec(c, "numeric") for c in train.columns], "y", class_labels=[0, 1]
    )
    runtime = runtime_for(bundle)
    frame = _frame(50)
    got = runtime.predict(runtime.prepare(frame))
    np.testing.assert_allclose(got.probabilities, bundle.predict(frame).probabilities, rtol=1e-6)


def test_pipelines_take_the_dataframe_path(bundles):
    runtime = runtime_for(bundles["classifier"])
    assert type(runtime) is SklearnRuntime
    frame = pd.DataFrame(models.rows())
    assert list(runtime.predict(frame).predictions) == list(bundles["classifier"].predict(frame).predictions)


def test_xgboost_answers_stay_right_across_threads_batch_sizes_and_refused_requests():
    """Each thread reuses its own XGBoost input holder between calls: answers of one call never
    leak into another, and a refused call leaves the thread able to predict."""
    from concurrent.futures import ThreadPoolExecutor

    bundle = models.xgb_classifier()
    runtime = runtime_for(bundle)
    frames = [_frame(rows) for rows in (1, 3, 64, 130, 7)]
    frames[2].iloc[5, 0] = np.nan
    expected = [bundle.predict(frame).probabilities for frame in frames]

    def predict_all(seed: int) -> list:
        order = np.random.default_rng(seed).permutation(len(frames))
        answers = [None] * len(frames)
        for index in order:
            with pytest.raises(ValueError):
                runtime.predict(np.zeros((2, 9), dtype=np.float32))  # wrong width: refused
            answers[index] = runtime.predict(runtime.prepare(frames[index])).probabilities
        return answers

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(predict_all, range(8)))
    for answers in results:
        for got, want in zip(answers, expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-6)
