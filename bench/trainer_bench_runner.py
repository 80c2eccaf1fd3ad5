"""Runs one foreign AutoML system on one train/test pair and writes its test score as JSON.

Meant to run inside that system's own virtualenv (FLAML's and AutoGluon's xgboost pins collide);
bench/trainer_bench.py calls it once per dataset and system:

    /work/bench-venvs/flaml/bin/python bench/trainer_bench_runner.py --system flaml \
        --train t.parquet --test s.parquet --label y --task binary --budget 60 --result r.json

Only pandas, numpy, pyarrow, scikit-learn and the system itself are imported (not loopml), so the
same scoring code runs in every virtualenv. The train and test parts arrive as Parquet files written
by the loopml side without pandas metadata, so any pandas version reads them from the Arrow types.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

#: Cores every system may use (the reference machine has 2).
CORES = 2


def score(task: str, y_true, output, classes) -> float:
    """The issue's test metric: ROC AUC (binary), log loss (multiclass), RMSE (regression).

    ``output`` is the class-probability matrix (columns in ``classes`` order) for classification,
    the predictions for regression. Class labels are compared as strings, since each system may
    hand back its own type for them (0 vs "0").
    """
    from sklearn.metrics import log_loss, mean_squared_error, roc_auc_score

    if task == "regression":
        return float(np.sqrt(mean_squared_error(y_true, output)))
    labels = [str(c) for c in classes]
    y = np.asarray(y_true).astype(str)
    if task == "binary":
        return float(roc_auc_score(y == labels[1], np.asarray(output)[:, 1]))
    return float(log_loss(y, output, labels=labels))


def run_flaml(train: pd.DataFrame, test: pd.DataFrame, label: str, task: str, budget: float) -> dict:
    import flaml
    from flaml import AutoML

    automl = AutoML()
    metric = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}[task]
    automl.fit(
        train.drop(columns=[label]),
        train[label],
        task="regression" if task == "regression" else "classification",
        metric=metric,
        time_budget=budget,
        verbose=0,
        n_jobs=CORES,
    )
    X = test.drop(columns=[label])
    if task == "regression":
        output, classes = automl.predict(X), []
    else:
        output, classes = automl.predict_proba(X), list(automl.classes_)
    return {
        "output": output,
        "classes": classes,
        "version": f"flaml {flaml.__version__}",
        "winner": automl.best_estimator,
    }


def run_autogluon(train: pd.DataFrame, test: pd.DataFrame, label: str, task: str, budget: float) -> dict:
    import autogluon.tabular
    from autogluon.tabular import TabularPredictor

    metric = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "root_mean_squared_error"}[task]
    # models go to a temporary folder, removed with everything AutoGluon wrote there
    with tempfile.TemporaryDirectory(prefix="autogluon-") as models_dir:
        predictor = TabularPredictor(
            label=label, eval_metric=metric, problem_type=task, path=models_dir, verbosity=0
        )
        predictor.fit(
            train,
            time_limit=budget,
            presets="best_quality",
            num_cpus=CORES,
            num_gpus=0,
            ag_args_fit={"num_cpus": CORES, "num_gpus": 0},
        )
        X = test.drop(columns=[label])
        if task == "regression":
            output, classes = predictor.predict(X).to_numpy(), []
        else:
            proba = predictor.predict_proba(X)
            output, classes = proba.to_numpy(), list(proba.columns)
        models = predictor.model_names()
        winner = predictor.model_best
    return {
        "output": output,
        "classes": classes,
        "version": f"autogluon.tabular {autogluon.tabular.__version__}",
        "winner": winner,
        "models": models,
    }


SYSTEMS = {"flaml": run_flaml, "autogluon": run_autogluon}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--system", choices=sorted(SYSTEMS), required=True)
    parser.add_argument("--train", required=True)
    parser.add_argument("--test", required=True)
    parser.add_argument("--label", required=True)
    parser.add_argument("--task", choices=("binary", "multiclass", "regression"), required=True)
    parser.add_argument("--budget", type=float, default=60)
    parser.add_argument("--result", required=True, help="JSON file to write the result to")
    args = parser.parse_args()
    train, test = pd.read_parquet(args.train), pd.read_parquet(args.test)
    started = time.monotonic()
    run = SYSTEMS[args.system](train, test, args.label, args.task, args.budget)
    wall = time.monotonic() - started
    result = {
        "score": score(args.task, test[args.label], run["output"], run["classes"]),
        "wall_s": wall,
        "version": run["version"],
        "winner": run["winner"],
    }
    if "models" in run:
        result["models"] = run["models"]
    Path(args.result).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
