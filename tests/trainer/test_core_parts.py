"""The engine's parts: metrics, search space as data, task plugin, ensemble selection, portfolio."""

from __future__ import annotations

import json
import pickle

import numpy as np
import optuna
import pandas as pd
import pytest

from loopml.services.trainer.core.datasource import FrameDataSource
from loopml.services.trainer.core.ensemble import select_ensemble
from loopml.services.trainer.core.evaluate import evaluate, make_folds
from loopml.services.trainer.core.execution import encode_target, ensemble_candidates
from loopml.services.trainer.core.metrics import METRICS, get_metric
from loopml.services.trainer.core.portfolio import load_portfolio, portfolio_for
from loopml.services.trainer.core.space import SearchSpace
from loopml.services.trainer.core.spec import SearchSpec, few_trials_expected, resolve
from loopml.services.trainer.core.state import TrialView
from loopml.services.trainer.core.tasks import Problem, TabularTask
from loopml.services.trainer.core.tasks.tabular import FAMILIES
from loopml.services.trainer.core.worker import TrialData, TrialWorker
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


def test_label_metrics_honour_sample_weights():
    y = np.array([0, 1, 1, 0, 1])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.1, 0.9]])
    heavy_miss = np.array([1.0, 1.0, 5.0, 1.0, 1.0])  # the one missed positive counts five times
    assert get_metric("recall").compute(y, proba) == pytest.approx(2 / 3)
    assert get_metric("recall").compute(y, proba, heavy_miss) == pytest.approx(2 / 7)
    assert get_metric("precision").compute(y, proba, heavy_miss) == pytest.approx(2 / 3)
    assert get_metric("f1").compute(y, proba, heavy_miss) == pytest.approx(0.4)


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


def test_caruana_weights_give_the_reported_score():
    rng = np.random.default_rng(1)
    y = rng.normal(size=600)
    shared = rng.normal(scale=1.5, size=600)  # two weak models whose errors cancel in a blend
    outputs = {"strong": y + rng.normal(scale=1.0, size=600), "plus": y + shared, "minus": y - shared}
    rmse = get_metric("rmse")
    weights, score = select_ensemble(outputs, y, rmse)
    assert {"plus", "minus"} <= set(weights) and sum(weights.values()) == pytest.approx(1.0)
    assert score < rmse.compute(y, outputs["strong"])
    assert score == pytest.approx(rmse.compute(y, sum(w * outputs[k] for k, w in weights.items())))


def test_ensemble_library_adds_the_best_of_each_family_below_the_top():
    def trial(number, family):
        return TrialView(f"s-t{number}", number, family, {}, "COMPLETE", score=float(number))

    ranked = [trial(n, "xgboost") for n in range(14)] + [trial(14, "knn"), trial(15, "knn"), trial(16, "knn")]
    library = ensemble_candidates(ranked, best=12, per_family=2)
    assert [t.number for t in library] == list(range(12)) + [14, 15]


@pytest.mark.parametrize("budget_s,folds,holdout", [(60, 0, 0.2), (3600, 3, 0.0), (None, 3, 0.0)])
def test_default_validation_is_a_holdout_when_the_rows_are_many_for_the_budget(budget_s, folds, holdout):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=25_000)})
    frame["y"] = frame["x"] * 2.0
    data = FrameDataSource()
    data.add("big", frame, label="y")
    spec = SearchSpec(dataset_id="big", time_budget_s=budget_s, max_trials=0 if budget_s else 5)
    resolved, _ = resolve(spec, data.describe("big", 0), frame)
    assert (resolved.cv_folds, resolved.holdout_fraction) == (folds, holdout)


def test_portfolio_is_data_covering_every_family_and_task():
    entries = load_portfolio()
    for task in ("binary", "multiclass", "regression"):
        assert {e["family"] for e in entries if task in e["tasks"]} == set(FAMILIES)
    problem = Problem("regression", "y", {"x": "numeric"}, [], 10)
    space = TabularTask().space(problem, ["linear", "knn"])
    configs = portfolio_for("regression", space)
    assert {f for f, _ in configs} == {"linear", "knn"}
    assert all("model__alpha" in p for f, p in configs if f == "linear")  # Ridge, not logistic


@pytest.mark.parametrize(
    "family,params,unit,marks",
    [
        ("hist_gradient_boosting", {"model__max_iter": 64}, "rounds", [8, 16, 32]),
        ("xgboost", {"model__n_estimators": 70}, "rounds", [8, 16, 32, 64]),
        ("mlp", {"model__epochs": 16}, "epochs", [2, 4, 8]),
    ],
)
def test_pruning_stops_boosting_rounds_and_epochs_inside_the_first_fold(family, params, unit, marks):
    frame = mixed(160)
    problem = Problem("binary", "label", {"x": "numeric", "colour": "categorical"}, ["no", "yes"], len(frame))
    y = encode_target(problem, frame["label"])
    folds = make_folds(problem, y, 3, 0.0, 0)
    from loopml.services.trainer.core.evaluate import TrialPruned

    seen = []

    def keep_going(step, score):
        seen.append((step, score))
        return False

    finished = evaluate(TabularTask(), problem, family, params, frame, y, folds, "roc_auc", 0, keep_going)
    # one score per checkpoint of the first fold's training, in rounds/epochs done, none per fold
    assert [s for s, _ in seen] == marks
    assert all(0.0 <= score <= 1.0 for _, score in seen) and np.isfinite(finished.score)

    first = []

    def stop_now(step, score):
        first.append(step)
        return True

    with pytest.raises(TrialPruned, match=f"after {marks[0]} {unit} of the first fold"):
        evaluate(TabularTask(), problem, family, params, frame, y, folds, "roc_auc", 0, stop_now)
    assert first == [marks[0]]  # training stopped at the first checkpoint


def test_pruner_compares_a_trial_only_with_its_own_family():
    from loopml.services.trainer.core.optuna_setup import make_pruner

    families = optuna.distributions.CategoricalDistribution(["knn", "xgboost"])
    study = optuna.create_study(direction="maximize", pruner=make_pruner("median"))
    for family, value in [("knn", 0.9)] * 5 + [("xgboost", 0.5)] * 5:  # finished, one score at step 1
        study.add_trial(
            optuna.trial.create_trial(
                params={"family": family},
                distributions={"family": families},
                value=value,
                intermediate_values={1: value},
            )
        )
    study.enqueue_trial({"family": "xgboost"})
    booster = study.ask({"family": families})
    booster.report(0.6, 1)  # well below the knn trials, above the other boosters at this step
    assert not booster.should_prune()
    study.enqueue_trial({"family": "knn"})
    neighbours = study.ask({"family": families})
    neighbours.report(0.6, 1)  # below the other knn trials
    assert neighbours.should_prune()


def test_wide_data_for_the_budget_starts_the_portfolio_with_boosting():
    wide = Problem("regression", "y", {f"x{i}": "numeric" for i in range(73)}, [], 2_197)  # ames' shape
    narrow = Problem("regression", "y", {f"x{i}": "numeric" for i in range(19)}, [], 5_282)  # wa_churn's
    assert few_trials_expected(wide, 60) and not few_trials_expected(wide, 600)
    assert not few_trials_expected(narrow, 60)
    assert not few_trials_expected(wide, None)  # no budget: every trial runs anyway


def test_importances_shrink_to_the_time_given_or_are_left_out():
    frame = mixed(400)
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
    y = (frame["label"] == "yes").to_numpy().astype(int)
    X = task.features(problem, frame)
    model = task.fit(task.build(problem, "knn", {}, 0), "knn", X, y)
    unlimited = task.feature_importances(problem, model, X, y)
    assert set(unlimited) == set(X.columns) and max(unlimited.values()) > 0
    assert task.feature_importances(problem, model, X, y, seconds=60.0) == unlimited  # time enough
    assert task.feature_importances(problem, model, X, y, seconds=0.0) == {}


def test_refit_out_of_time_during_importances_keeps_its_model():
    """The refit sends its fitted model before the importances: when the time limit strikes during
    them, the result is the model without importances, not a failed refit."""
    rng = np.random.default_rng(0)
    # 1,000 columns: the permutation importances predict 300 x 1,001 rows through k-NN (minutes)
    frame = pd.DataFrame(rng.normal(size=(300, 1000)), columns=[f"c{i}" for i in range(1000)])
    y = (frame["c0"] > 0).to_numpy().astype(int)
    problem = Problem("binary", "label", {c: "numeric" for c in frame.columns}, [0, 1], len(frame))
    worker = TrialWorker(TrialData("tabular", problem.to_dict(), frame, y, [], "roc_auc", 0))
    try:
        request = {"members": [{"family": "knn", "params": {}}], "weights": [1.0], "importances": True}
        outcome = worker.run("refit", request, time_limit_s=5.0, memory_limit_bytes=0)
    finally:
        worker.stop()
    assert outcome.status == "done"
    assert outcome.value["unfinished"] == "time limit exceeded"
    assert "importances" not in outcome.value
    model = pickle.loads(outcome.value["estimator"])
    assert model.predict_proba(frame).shape == (300, 2)


def test_binary_roc_auc_matches_scikit_learn_with_ties_and_weights():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    positive = np.round(np.clip(y * 0.3 + rng.random(500), 0, 1), 1)  # rounded: many tied scores
    proba = np.column_stack([1 - positive, positive])
    weights = rng.random(500)
    metric = get_metric("roc_auc")
    assert metric.compute(y, proba) == pytest.approx(roc_auc_score(y, positive), abs=1e-12)
    assert metric.compute(y, proba, weights) == pytest.approx(
        roc_auc_score(y, positive, sample_weight=weights), abs=1e-12
    )
    with pytest.raises(ValueError, match="one class"):
        metric.compute(np.zeros(10, dtype=int), proba[:10])
