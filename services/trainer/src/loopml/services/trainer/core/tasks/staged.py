"""Fitting a tabular pipeline's model in stages, so that the pruner sees a score per boosting round
(XGBoost, histogram gradient boosting) or per epoch (the MLP) rather than only per fold.

The preprocessing is fitted first; the model then trains as usual, and at checkpoints the validation
rows are predicted and handed to `on_stage(done, output)`, which returns True to stop training (the
trial is pruned). Checkpoints are powers of two (8, 16, 32, ... boosting rounds; 2, 4, 8, ... epochs),
the same for every trial whatever its total, so the pruner finds other trials' scores at the same
step; and few, since each report is a round trip to the parent process and a database write.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

STAGED_FAMILIES = ("hist_gradient_boosting", "xgboost", "mlp")

#: on_stage(rounds or epochs done, validation output) -> stop?
OnStage = Callable[[int, np.ndarray], bool]
#: predict(fitted model, transformed rows) -> output in the metric's form
Predict = Callable[[object, object], np.ndarray]


FIRST_ROUND_CHECKPOINT, FIRST_EPOCH_CHECKPOINT = 8, 2


def checkpoints(total: int, first: int) -> list[int]:
    """Rounds (or epochs) after which the running model is scored: first, 2 first, 4 first, ... < total."""
    marks, done = [], first
    while done < total:
        marks.append(done)
        done *= 2
    return marks


def fit_in_stages(
    pipeline, family: str, X, y, X_valid, on_stage: OnStage, predict: Predict, sample_weight=None
) -> int | None:
    """Fit `pipeline` (steps "prep" and "model") on X, y; the rounds/epochs done when stopped, else None.
    `sample_weight` goes to the boosting models (the MLP trains unweighted)."""
    prep, model = pipeline.named_steps["prep"], pipeline.named_steps["model"]
    Xt = prep.fit_transform(X, y)
    Xv = prep.transform(X_valid)
    if family == "hist_gradient_boosting":
        return _boosting_rounds_warm_start(model, Xt, y, Xv, on_stage, predict, sample_weight)
    if family == "xgboost":
        return _xgboost_rounds(model, Xt, y, Xv, on_stage, sample_weight)
    if family == "mlp":
        return _mlp_epochs(model, Xt, y, Xv, on_stage, predict)
    raise ValueError(f"family {family!r} has no stages")


def _boosting_rounds_warm_start(model, Xt, y, Xv, on_stage, predict, sample_weight) -> int | None:
    total = int(model.max_iter)
    model.set_params(warm_start=True)  # each fit adds trees to the ones already grown
    for done in checkpoints(total, FIRST_ROUND_CHECKPOINT):
        model.set_params(max_iter=done)
        model.fit(Xt, y, sample_weight=sample_weight)
        if on_stage(done, predict(model, Xv)):
            return done
    model.set_params(max_iter=total)
    model.fit(Xt, y, sample_weight=sample_weight)
    model.set_params(warm_start=False)
    return None


def _xgboost_rounds(model, Xt, y, Xv, on_stage, sample_weight) -> int | None:
    import xgboost
    from scipy import sparse

    marks = set(checkpoints(int(model.n_estimators), FIRST_ROUND_CHECKPOINT))
    rows = Xv.tocsr() if sparse.issparse(Xv) else Xv
    classification = hasattr(model, "predict_proba")
    stopped: list[int] = []

    class Stages(xgboost.callback.TrainingCallback):
        def after_iteration(self, booster, epoch, evals_log) -> bool:
            done = epoch + 1
            if done not in marks:
                return False
            output = np.asarray(booster.inplace_predict(rows, iteration_range=(0, done)), dtype=float)
            if classification and output.ndim == 1:  # binary: probability of class 1
                output = np.column_stack([1.0 - output, output])
            if on_stage(done, output):
                stopped.append(done)
                return True
            return False

    model.set_params(callbacks=[Stages()])
    try:
        model.fit(Xt, y, sample_weight=sample_weight)
    finally:
        model.set_params(callbacks=None)
    return stopped[0] if stopped else None


def _mlp_epochs(model, Xt, y, Xv, on_stage, predict) -> int | None:
    marks = set(checkpoints(int(model.epochs), FIRST_EPOCH_CHECKPOINT))
    stopped: list[int] = []

    def after_epoch(done: int) -> bool:
        if done in marks and on_stage(done, predict(model, Xv)):
            stopped.append(done)
            return True
        return False

    model.fit(Xt, y, epoch_callback=after_epoch)
    return stopped[0] if stopped else None
