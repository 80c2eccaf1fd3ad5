"""Temperature scaling of the final classifier and its members, and the large-data portfolio."""

from __future__ import annotations

import multiprocessing
import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from loopml.modelkit import ColumnSpec, ModelBundle, dump_bundle, load_bundle
from loopml.modelkit.ensemble import DecodedClassifier
from loopml.services.trainer.core.calibration import (
    blend,
    fit_temperature,
    scaled_probabilities,
    temperature_scaled,
)
from loopml.services.trainer.core.metrics import get_metric
from loopml.services.trainer.core.portfolio import SLOW_ON_LARGE_DATA, portfolio_for
from loopml.services.trainer.core.tasks import Problem, TabularTask
from loopml.services.trainer.core.tasks.tabular import FAMILIES


def _sampled(rows: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """True class probabilities and labels drawn from them (so the probabilities are calibrated)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(rows, classes))
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(classes, p=p) for p in proba])
    return proba, y


def test_temperature_lowers_the_log_loss_of_over_confident_probabilities():
    proba, y = _sampled(2000, 4)
    over_confident = scaled_probabilities(proba, 3.0)
    log_loss = get_metric("log_loss")
    beta = fit_temperature(over_confident, y)
    assert beta == pytest.approx(1 / 3, rel=0.15)
    assert log_loss.compute(y, scaled_probabilities(over_confident, beta)) < 0.9 * log_loss.compute(
        y, over_confident
    )
    # the class order of every row is kept
    assert (scaled_probabilities(over_confident, beta).argmax(axis=1) == over_confident.argmax(axis=1)).all()


def test_temperature_is_left_out_when_it_does_not_pay_or_cannot_be_fitted():
    proba, y = _sampled(2000, 3, seed=1)
    assert fit_temperature(proba, y) is None  # already calibrated
    assert fit_temperature(proba[:10], y[:10]) is None  # too few rows
    assert fit_temperature(proba, np.zeros_like(y)) is None  # one class


def test_temperature_ignores_rows_without_predictions_and_honours_weights():
    proba, y = _sampled(1000, 3, seed=2)
    over_confident = scaled_probabilities(proba, 2.0)
    with_gaps = np.vstack([over_confident, np.full((50, 3), np.nan)])  # holdout: unscored rows
    labels = np.concatenate([y, np.zeros(50, dtype=int)])
    beta = fit_temperature(with_gaps, labels)
    assert beta == pytest.approx(fit_temperature(over_confident, y))
    weights = np.concatenate([np.ones(1000), np.zeros(50)])
    assert fit_temperature(with_gaps, labels, weights) == pytest.approx(beta)


def test_blend_is_the_weighted_average():
    a, b = np.array([[0.2, 0.8]]), np.array([[0.6, 0.4]])
    assert np.allclose(blend([a, b], [3.0, 1.0]), [[0.3, 0.7]])


def test_a_calibrated_classifier_survives_the_artifact_round_trip():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    codes = (frame["a"] + 0.3 * rng.normal(size=300) > 0).astype(int) + (frame["b"] > 0.5).astype(int)
    model = LogisticRegression(C=100.0).fit(frame, codes)
    calibrated = temperature_scaled(model, 0.5, 3)
    bundle = ModelBundle(
        estimator=DecodedClassifier(calibrated, ["low", "mid", "high"]),
        task="multiclass",
        inputs=[ColumnSpec("a", "numeric"), ColumnSpec("b", "numeric")],
        label_column="y",
        class_labels=["low", "mid", "high"],
        metrics={},
        params={"temperature_beta": 0.5},
    )
    data, sha = dump_bundle(bundle)
    loaded = load_bundle(data, sha)
    prediction = loaded.predict(frame.head(20))
    expected = scaled_probabilities(model.predict_proba(frame.head(20)), 0.5)
    assert np.allclose(prediction.probabilities, expected)
    assert not np.allclose(prediction.probabilities, model.predict_proba(frame.head(20)))
    labels = np.array(["low", "mid", "high"], dtype=object)[model.predict(frame.head(20))]
    assert list(prediction.predictions) == list(labels)


def test_a_calibrated_binary_classifier_keeps_two_columns():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(size=200)})
    codes = (frame["a"] + rng.normal(size=200) > 0).astype(int)
    model = LogisticRegression().fit(frame, codes)
    calibrated = temperature_scaled(model, 2.0, 2)
    assert np.allclose(calibrated.predict_proba(frame), scaled_probabilities(model.predict_proba(frame), 2.0))
    assert list(calibrated.classes_) == [0, 1]


def test_large_data_portfolio_starts_with_boosting_and_ends_with_slow_families():
    space = TabularTask().space(Problem("regression", "y", {"x": "numeric"}, [], 40_000), list(FAMILIES))
    usual = portfolio_for("regression", space)
    large = portfolio_for("regression", space, large_data=True)
    assert sorted(map(repr, usual)) == sorted(map(repr, large))  # the same entries
    assert usual[0][0] == "mlp"
    assert [family for family, _ in large[:2]] == ["hist_gradient_boosting", "xgboost"]
    slow = [i for i, (family, _) in enumerate(large) if family in SLOW_ON_LARGE_DATA]
    assert slow == list(range(len(large) - len(slow), len(large)))


def test_refit_applies_member_and_final_temperatures():
    from loopml.services.trainer.core.worker import TrialData, _run_refit
    from tests.trainer.helpers import iris

    frame = iris()
    problem = Problem("multiclass", "target", {c: "numeric" for c in frame.columns if c != "target"})
    problem.classes = sorted(frame["target"].unique().tolist(), key=str)
    codes = {str(c): i for i, c in enumerate(problem.classes)}
    y = frame["target"].astype(str).map(codes).to_numpy()
    features = frame.drop(columns=["target"])
    data = TrialData("tabular", problem.to_dict(), features, y, [], "log_loss", 0, features, y)
    members = [
        {"family": "linear", "params": {"model__C": 10.0}},
        {"family": "knn", "params": {"model__n_neighbors": 5}},
    ]
    plain = pickle.loads(
        _run_refit(None, data, {"members": members, "weights": [0.5, 0.5], "importances": False})["estimator"]
    )
    request = {
        "members": [{**members[0], "temperature": 0.5}, {**members[1], "temperature": None}],
        "weights": [0.5, 0.5],
        "importances": True,
        "temperature": 2.0,
    }
    parent, child = multiprocessing.Pipe()
    importances = _run_refit(child, data, request)  # the model comes first, as a partial result
    kind, result = parent.recv()
    assert kind == "partial" and "importances" not in result
    result.update(importances)
    calibrated = pickle.loads(result["estimator"])
    linear, knn = (np.asarray(m.predict_proba(features)) for m in plain.members)
    expected = scaled_probabilities(blend([scaled_probabilities(linear, 0.5), knn], [0.5, 0.5]), 2.0)
    assert np.allclose(calibrated.predict_proba(features), expected)
    assert result["test_metrics"]["log_loss"] == pytest.approx(get_metric("log_loss").compute(y, expected))
    assert set(result["importances"]) == set(features.columns)
