"""The engine's parts: metrics, search space as data, task plugin, ensemble selection, portfolio."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pytest

from loopml.services.trainer.core.ensemble import select_ensemble
from loopml.services.trainer.core.evaluate import evaluate, make_folds
from loopml.services.trainer.core.execution import encode_target
from loopml.services.trainer.core.metrics import METRICS, get_metric
from loopml.services.trainer.core.portfolio import load_portfolio, portfolio_for
from loopml.services.trainer.core.space import SearchSpace
from loopml.services.trainer.core.tasks import Problem, TabularTask
from loopml.services.trainer.core.tasks.tabular import FAMILIES
from tests.trainer.helpers import mixed


def test_metrics_values_and_directions():
    y = np.array([0, 1, 1, 0])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.3, 0.7]])
    assert get_metric("accuracy").compute(y, proba) == 0.75
    assert get_metric("roc_auc").compute(y, proba) == 0.75  # 3 of 4 positive-negative pairs ordered
    assert get_metric("log_loss").compute(y, proba) == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.6, 0.3])))
    assert get_metric("rmse").compute(np.array([1.0, 3.0]), np.array([2.0, 3.0])) == pytest.approx(
        np.sqrt(0.5)
    )
    assert get_metric("mape").compute(np.array([2.0]), np.array([1.0])) == 0.5
    assert not METRICS["log_loss"].higher_is_better and METRICS["r2"].higher_is_better
    assert not METRICS["rmse"].fits("binary") and METRICS["f1"].fits("multiclass")


def test_search_space_is_data_and_samples_through_optuna():
    problem = Problem("binary", "label", {"x": "numeric", "review": "text"}, ["no", "yes"], 100)
    space = TabularTask().space(problem, list(FAMILIES))
    again = SearchSpace.from_dict(json.loads(json.dumps(space.to_dict())))
    assert again == space
    assert any(
        p.name == "prep__tfidf_max_features" for p in space.families["linear"]
    )  # text -> TF-IDF searched
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(30):
        trial = study.ask()
        family, params = space.sample(trial)
        assert set(params) == {p.name for p in space.families[family]}
        assert SearchSpace.from_optuna(trial.params) == (family, params)
        study.tell(trial, 0.0)
        seen.add(family)
    assert len(seen) >= 5


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_trains_on_mixed_columns(family):
    frame = mixed(120)
    problem = Problem(
        "binary",
        "label",
        {
            "x": "numeric",
            "colour": "categorical",
            "code": "categorical",
            "when": "datetime",
            "review": "text",
        },
        ["no", "yes"],
        len(frame),
    )
    task = TabularTask()
    space = task.space(problem, [family])
    params = dict(portfolio_for("binary", space)[0][1])
    if family == "mlp":
        params["model__epochs"] = 5
    if family == "hist_gradient_boosting":
        params["model__max_iter"] = 30
    y = encode_target(problem, frame["label"])
    folds = make_folds(problem, y, 3, 0.0, 0)
    outcome = evaluate(task, problem, family, params, frame, y, folds, "roc_auc", 0)
    assert outcome.score > 0.6 and outcome.oof.shape == (120, 2) and not np.isnan(outcome.oof).any()
    assert set(outcome.metrics) >= {"roc_auc", "log_loss", "accuracy"}


def test_pruning_stops_a_trial_between_folds():
    frame = mixed(120)
    problem = Problem("binary", "label", {"x": "numeric"}, ["no", "yes"], len(frame))
    y = encode_target(problem, frame["label"])
    folds = make_folds(problem, y, 4, 0.0, 0)
    steps = []

    def report(step, score):
        steps.append(step)
        return True

    from loopml.services.trainer.core.evaluate import TrialPruned

    with pytest.raises(TrialPruned, match="after 1 of 4 folds"):
        evaluate(TabularTask(), problem, "linear", {}, frame, y, folds, "roc_auc", 0, report)
    assert steps == [0]


def test_caruana_selection_beats_its_members():
    rng = np.random.default_rng(0)
    y = rng.normal(size=400)
    a = y + rng.normal(scale=1.0, size=400)  # two models with independent errors
    b = y + rng.normal(scale=1.0, size=400)
    weights, score = select_ensemble({"a": a, "b": b}, y, get_metric("rmse"))
    assert set(weights) == {"a", "b"} and sum(weights.values()) == pytest.approx(1.0)
    assert score < min(get_metric("rmse").compute(y, a), get_metric("rmse").compute(y, b))


def test_portfolio_is_data_covering_every_family_and_task():
    entries = load_portfolio()
    for task in ("binary", "multiclass", "regression"):
        assert {e["family"] for e in entries if task in e["tasks"]} == set(FAMILIES)
    problem = Problem("regression", "y", {"x": "numeric"}, [], 10)
    space = TabularTask().space(problem, ["linear", "knn"])
    configs = portfolio_for("regression", space)
    assert {f for f, _ in configs} == {"linear", "knn"}
    assert all("model__alpha" in p for f, p in configs if f == "linear")  # Ridge, not logistic
