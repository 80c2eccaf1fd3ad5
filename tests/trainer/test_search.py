"""The search engine end to end without gRPC: real worker processes, SQLite state, a folder store."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from loopml.modelkit import load_bundle
from loopml.runtime.errors import InvalidArgument
from loopml.services.trainer.core.datasource import FrameDataSource
from loopml.services.trainer.core.runner import SearchRunner
from loopml.services.trainer.core.spec import SearchSpec
from tests.trainer.helpers import diabetes, iris, mixed, open_engine, trainer, wait_final


@pytest.fixture
def running(local_backend):
    """(trainer facade, data source) with a runner of two slots in this process."""
    data = FrameDataSource()
    engine = open_engine(local_backend.settings, data, lease_s=5)
    runner = SearchRunner(engine, max_slots=2, poll_s=0.2)
    runner.start()
    yield trainer(engine), data, engine
    runner.stop()


def artifact(engine, view):
    key = engine.store.key_from_uri(view.result["artifact_uri"])
    return load_bundle(engine.store.read_bytes(key), view.result["artifact_sha256"])


def test_regression_search_with_a_trial_budget(running):
    facade, data, engine = running
    data.add("diabetes", diabetes(150))
    view = facade.create_search(
        SearchSpec(
            dataset_id="diabetes",
            label="target",
            max_trials=4,
            seed=1,
            families=["linear", "hist_gradient_boosting", "knn"],
            cv_folds=3,
        )
    )
    assert view.spec["task"] == "regression" and view.spec["metric"] == "rmse"
    done = wait_final(facade, view.search_id)
    assert done.state == "SUCCEEDED", done.failure_reason
    trials = facade.state.trials(view.search_id)
    assert len(trials) == 4 and all(t.from_portfolio for t in trials[:3])  # the portfolio comes first
    board = facade.leaderboard(view.search_id)
    scores = [t.score for _, t, _ in board.entries]
    assert not board.higher_is_better and scores == sorted(scores)
    bundle = artifact(engine, done)
    prediction = bundle.predict(diabetes(150).drop(columns=["target"]).head(3)).predictions
    assert prediction.shape == (3,) and np.isfinite(prediction).all()
    assert set(done.result["test_metrics"]) >= {"rmse", "mae", "r2"}

    # warm start: the earlier search's best configuration is the first one tried
    best = facade.get_search(view.search_id).best_trial
    warm = facade.create_search(
        SearchSpec(
            dataset_id="diabetes",
            label="target",
            max_trials=1,
            seed=2,
            cv_folds=3,
            families=["linear", "hist_gradient_boosting", "knn"],
            ensemble=False,
            warm_start_search_ids=[view.search_id],
        )
    )
    assert wait_final(facade, warm.search_id).state == "SUCCEEDED"
    first = facade.state.trials(warm.search_id)[0]
    assert (first.family, first.params) == (best.family, best.params) and first.from_portfolio
    with pytest.raises(Exception, match="warm_start_search_ids"):
        facade.create_search(
            SearchSpec(dataset_id="diabetes", label="target", max_trials=1, warm_start_search_ids=["missing"])
        )


def test_mixed_columns_multiclass_and_ensemble(running):
    facade, data, engine = running
    data.add("mixed", mixed(), label="label")
    view = facade.create_search(
        SearchSpec(
            dataset_id="mixed",
            max_trials=3,
            seed=2,
            metric="log_loss",
            cv_folds=3,
            families=["linear", "random_forest", "hist_gradient_boosting"],
        )
    )
    assert view.problem["features"] == {
        "x": "numeric",
        "colour": "categorical",
        "code": "categorical",
        "when": "datetime",
        "review": "text",
    }
    done = wait_final(facade, view.search_id)
    assert done.state == "SUCCEEDED", done.failure_reason
    bundle = artifact(engine, done)
    rows = mixed().drop(columns=["label"]).head(4)
    assert set(bundle.predict(rows).predictions) <= {"yes", "no"}
    assert set(bundle.feature_importances) == {"x", "colour", "code", "when", "review"}

    data.add("iris", iris(), label="target")
    view = facade.create_search(
        SearchSpec(
            dataset_id="iris", max_trials=4, seed=4, cv_folds=3, families=["linear", "knn", "extra_trees"]
        )
    )
    done = wait_final(facade, view.search_id)
    assert done.state == "SUCCEEDED" and done.spec["metric"] == "log_loss", done.failure_reason
    result = done.result
    if result["ensemble_members"]:  # the ensemble won: it is its own leaderboard entry
        assert abs(sum(m["weight"] for m in result["ensemble_members"]) - 1) < 1e-9
        entries = facade.leaderboard(view.search_id).entries
        assert any(t.trial_id == "ensemble" for _, t, _ in entries)
    probabilities = artifact(engine, done).predict(iris().drop(columns=["target"]).head(5)).probabilities
    assert probabilities.shape == (5, 3) and np.allclose(probabilities.sum(axis=1), 1)


def test_every_trial_failing_fails_the_search_with_reasons_per_family(running):
    facade, data, _ = running
    data.add("iris", iris(), label="target")
    view = facade.create_search(
        SearchSpec(
            dataset_id="iris",
            max_trials=3,
            seed=1,
            trial_memory_limit_bytes=1,
            families=["linear", "knn", "random_forest"],
        )
    )
    done = wait_final(facade, view.search_id)
    assert done.state == "FAILED"
    assert "every trial failed" in done.failure_reason, done.failure_reason
    trials = facade.state.trials(view.search_id)
    assert len(trials) == 3 and all(t.state == "FAILED" for t in trials)
    failures = {f["family"]: f for f in done.family_failures}
    assert set(failures) == {t.family for t in trials}  # one entry per family that was tried
    assert sum(f["failed_trials"] for f in failures.values()) == 3
    assert all("memory limit exceeded" in f["reason"] for f in failures.values())
    assert done.result is None


def test_cancel_keeps_the_best_model_so_far(running):
    facade, data, engine = running
    data.add("iris", iris(), label="target")
    view = facade.create_search(
        SearchSpec(dataset_id="iris", time_budget_s=120, seed=1, families=["linear", "knn", "random_forest"])
    )
    deadline = time.monotonic() + 60
    while facade.get_search(view.search_id).progress.completed < 1:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    facade.cancel_search(view.search_id, keep_best=True)
    done = wait_final(facade, view.search_id)
    assert done.state == "CANCELLED" and done.result is not None
    assert artifact(engine, done).predict(iris().drop(columns=["target"]).head(2)).predictions.shape == (2,)
    assert all(t.state != "RUNNING" for t in facade.state.trials(view.search_id))
    with pytest.raises(Exception, match="already CANCELLED"):
        facade.cancel_search(view.search_id)


@pytest.mark.parametrize(
    "strategy,pruner",
    [("random", "hyperband"), ("qmc", "successive_halving"), ("cma_es", "none"), ("grid", "median")],
)
def test_every_strategy_and_pruner_runs(running, strategy, pruner):
    facade, data, _ = running
    data.add("iris", iris(), label="target")
    view = facade.create_search(
        SearchSpec(
            dataset_id="iris",
            max_trials=4,
            seed=3,
            strategy=strategy,
            pruner=pruner,
            families=["linear", "knn"],
            ensemble=False,
            cv_folds=3,
        )
    )
    done = wait_final(facade, view.search_id)
    assert done.state == "SUCCEEDED", done.failure_reason
    trials = facade.state.trials(view.search_id)
    assert (
        len(trials) == 4 and sum(not t.from_portfolio for t in trials) == 2
    )  # the sampler proposed the rest


def _corrupted_regression(rows: int = 240) -> pd.DataFrame:
    """y = 3x, except on a third of the rows whose labels are garbage and whose weight is 0."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=rows)
    bad = np.arange(rows) % 3 == 0
    y = np.where(bad, -20 * x, 3 * x + rng.normal(scale=0.1, size=rows))
    return pd.DataFrame({"x": x, "w": np.where(bad, 0.0, 1.0), "y": y})


def test_weight_column_weights_the_fit_and_the_metric(running):
    facade, data, engine = running
    data.add("weighted", _corrupted_regression(), label="y", roles={"w": "weight"})
    data.add("unweighted", _corrupted_regression(), label="y")
    spec = {"max_trials": 1, "seed": 0, "families": ["linear"], "cv_folds": 3, "ensemble": False}
    weighted = facade.create_search(SearchSpec(dataset_id="weighted", **spec))
    plain = facade.create_search(SearchSpec(dataset_id="unweighted", **spec))
    assert weighted.spec["weight_column"] == "w" and weighted.spec["feature_columns"] == ["x"]
    assert plain.spec["weight_column"] == "" and "w" in plain.spec["feature_columns"]
    weighted, plain = wait_final(facade, weighted.search_id), wait_final(facade, plain.search_id)
    assert weighted.state == plain.state == "SUCCEEDED"
    # the zero-weight rows neither pull the fit nor count in the scores: the clean line is found
    assert weighted.result["score"] < 0.3 and weighted.result["test_metrics"]["rmse"] < 0.3
    assert plain.result["score"] > 3.0
    model = artifact(engine, weighted)
    assert model.predict(pd.DataFrame({"x": [1.0]})).predictions[0] == pytest.approx(3.0, abs=0.1)


def test_scoring_on_the_stored_splits_validation_part(running):
    facade, data, _ = running
    rng = np.random.default_rng(1)
    x = rng.normal(size=200)
    offset = np.where(np.arange(200) >= 150, 10.0, 0.0)  # the validation rows sit 10 above the line
    frame = pd.DataFrame({"x": x, "y": 3 * x + offset + rng.normal(scale=0.1, size=200)})
    version = data.add("shifted", frame, label="y")
    parts = {"train": list(range(100)), "test": list(range(100, 150)), "validation": list(range(150, 200))}
    split = data.add_split("shifted", version, "with-validation", parts)
    no_validation = data.add_split("shifted", version, "without", {"train": list(range(150))})
    spec = {"max_trials": 1, "seed": 0, "families": ["linear"], "ensemble": False}

    with pytest.raises(InvalidArgument, match="needs a stored split"):
        facade.create_search(SearchSpec(dataset_id="shifted", use_split_validation=True, **spec))
    with pytest.raises(InvalidArgument, match="has no validation rows"):
        facade.create_search(
            SearchSpec(dataset_id="shifted", split_id=no_validation, use_split_validation=True, **spec)
        )
    view = facade.create_search(
        SearchSpec(dataset_id="shifted", split_id=split, use_split_validation=True, **spec)
    )
    assert view.spec["cv_folds"] == 0 and view.spec["holdout_fraction"] == 0
    done = wait_final(facade, view.search_id)
    assert done.state == "SUCCEEDED", done.failure_reason
    # fitted on the train part, scored on the validation part: the offset is the error
    assert done.result["score"] == pytest.approx(10.0, abs=1.0)
