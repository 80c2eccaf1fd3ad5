"""Runs one AutoML system on one train/test pair and prints its test score as JSON.

Meant to run inside that system's own virtualenv (FLAML's and AutoGluon's xgboost pins collide):

    /tmp/venv-flaml/bin/python bench/trainer_bench_runner.py --system flaml --train t.parquet \
        --test s.parquet --label y --task binary --budget 60

Only pandas, numpy, scikit-learn and the system itself are imported (not loopml).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd


def score(task: str, y_true, output, classes) -> float:
    from sklearn.metrics import log_loss, mean_squared_error, roc_auc_score

    if task == "binary":
        return float(roc_auc_score(y_true, output[:, 1]))
    if task == "multiclass":
        return float(log_loss(y_true, output, labels=classes))
    return float(np.sqrt(mean_squared_error(y_true, output)))


def run_flaml(train, test, label, task, budget):
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
        n_jobs=2,
    )
    X = test.drop(columns=[label])
    if task == "regression":
        return automl.predict(X), []
    return automl.predict_proba(X), list(automl.classes_)


def run_autogluon(train, test, label, task, budget):
    from autogluon.tabular import TabularPredictor

    metric = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "root_mean_squared_error"}[task]
    predictor = TabularPredictor(label=label, eval_metric=metric, problem_type=task, verbosity=0)
    predictor.fit(train, time_limit=budget, presets="best_quality")
    X = test.drop(columns=[label])
    if task == "regression":
        return predictor.predict(X).to_numpy(), []
    proba = predictor.predict_proba(X)
    return proba.to_numpy(), list(proba.columns)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--system", choices=("flaml", "autogluon"), required=True)
    parser.add_argument("--train", required=True)
    parser.add_argument("--test", required=True)
    parser.add_argument("--label", required=True)
    parser.add_argument("--task", required=True)
    parser.add_argument("--budget", type=float, default=60)
    args = parser.parse_args()
    train, test = pd.read_parquet(args.train), pd.read_parquet(args.test)
    started = time.monotonic()
    output, classes = (run_flaml if args.system == "flaml" else run_autogluon)(
        train, test, args.label, args.task, args.budget
    )
    wall = time.monotonic() - started
    print(json.dumps({"score": score(args.task, test[args.label], output, classes), "wall_s": wall}))


if __name__ == "__main__":
    main()
