"""Tabular classification and regression: scikit-learn pipelines of preprocessing + one model family.

Every candidate is `Pipeline([("prep", ColumnTransformer), ("model", estimator)])`, so a parameter
is addressed as `prep__scaler` or `model__max_depth`. Estimators are single-threaded: parallelism
comes from running trials side by side in worker processes.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from loopml.services.trainer.core.space import SearchSpace, choice, float_param, int_param
from loopml.services.trainer.core.tasks.base import Problem, Task
from loopml.services.trainer.core.tasks.staged import STAGED_FAMILIES, fit_in_stages

FAMILIES = ("hist_gradient_boosting", "xgboost", "random_forest", "extra_trees", "linear", "knn", "mlp")
NUMERIC_KINDS = ("numeric", "integer", "boolean")
#: Families whose model takes sample weights; k-NN and the MLP fit unweighted (scores stay weighted).
WEIGHTED_FAMILIES = ("linear", "random_forest", "extra_trees", "hist_gradient_boosting", "xgboost")
TREES = ("hist_gradient_boosting", "xgboost", "random_forest", "extra_trees")
#: Rows of the permutation-importance sample: at most, and the fewest worth computing.
IMPORTANCE_ROWS, MIN_IMPORTANCE_ROWS = 300, 50

_SCALED_PREP = [
    choice("prep__numeric_imputer", "median", "mean"),
    choice("prep__scaler", "standard", "robust"),
    choice("prep__categorical_encoder", "onehot", "target"),
    choice("prep__max_categories", 16, 64),
]
_TREE_PREP = [
    choice("prep__numeric_imputer", "median", "mean"),
    choice("prep__categorical_encoder", "ordinal", "onehot", "target"),
    choice("prep__max_categories", 16, 64),
]

_MODEL_SPACE = {
    "linear": [float_param("model__C", 1e-3, 1e2, log=True)],
    "knn": [
        int_param("model__n_neighbors", 1, 50, log=True),
        choice("model__weights", "uniform", "distance"),
    ],
    "random_forest": [
        int_param("model__n_estimators", 50, 300, log=True),
        float_param("model__max_features", 0.1, 1.0),
        int_param("model__min_samples_leaf", 1, 10, log=True),
    ],
    "extra_trees": [
        int_param("model__n_estimators", 50, 300, log=True),
        float_param("model__max_features", 0.1, 1.0),
        int_param("model__min_samples_leaf", 1, 10, log=True),
    ],
    "hist_gradient_boosting": [
        float_param("model__learning_rate", 0.01, 0.3, log=True),
        int_param("model__max_iter", 50, 500, log=True),
        int_param("model__max_leaf_nodes", 8, 128, log=True),
        float_param("model__l2_regularization", 1e-6, 10.0, log=True),
        int_param("model__min_samples_leaf", 5, 100, log=True),
    ],
    "xgboost": [
        int_param("model__n_estimators", 50, 1000, log=True),
        float_param("model__learning_rate", 0.01, 0.3, log=True),
        int_param("model__max_depth", 2, 10),
        float_param("model__subsample", 0.5, 1.0),
        float_param("model__colsample_bytree", 0.5, 1.0),
        float_param("model__reg_lambda", 1e-3, 10.0, log=True),
        float_param("model__min_child_weight", 0.5, 20.0, log=True),
    ],
    "mlp": [
        choice("model__hidden_units", 32, 64, 128, 256),
        int_param("model__layers", 1, 3),
        float_param("model__dropout", 0.0, 0.3),
        float_param("model__learning_rate", 1e-4, 1e-2, log=True),
        int_param("model__epochs", 10, 60, log=True),
        choice("model__batch_size", 64, 128, 256),
        float_param("model__weight_decay", 1e-6, 1e-2, log=True),
    ],
}


class TabularTask(Task):
    name = "tabular"

    def families(self, problem: Problem) -> list[str]:
        return list(FAMILIES)

    def space(self, problem: Problem, families: list[str]) -> SearchSpace:
        spaces = {}
        for family in families:
            prep = _TREE_PREP if family in TREES else _SCALED_PREP
            if family == "linear" and problem.task == "regression":
                model = [float_param("model__alpha", 1e-3, 1e3, log=True)]
            else:
                model = _MODEL_SPACE[family]
            if any(kind == "text" for kind in problem.features.values()):
                prep = prep + [choice("prep__tfidf_max_features", 500, 2000)]
            spaces[family] = list(prep) + list(model)
        return SearchSpace(spaces)

    def features(self, problem: Problem, frame: pd.DataFrame) -> pd.DataFrame:
        return frame[list(problem.features)]

    staged_families = STAGED_FAMILIES

    def fit(self, estimator, family, frame, y, sample_weight=None):
        if sample_weight is None or family not in WEIGHTED_FAMILIES:
            return estimator.fit(frame, y)
        return estimator.fit(frame, y, model__sample_weight=sample_weight)

    def fit_in_stages(
        self, estimator, family, frame, y, valid_frame, on_stage, predict, sample_weight=None
    ) -> int | None:
        if family not in WEIGHTED_FAMILIES:
            sample_weight = None
        return fit_in_stages(estimator, family, frame, y, valid_frame, on_stage, predict, sample_weight)

    def build(self, problem: Problem, family: str, params: dict[str, Any], seed: int):
        from sklearn.pipeline import Pipeline

        prep = {k.split("__", 1)[1]: v for k, v in params.items() if k.startswith("prep__")}
        model = {k.split("__", 1)[1]: v for k, v in params.items() if k.startswith("model__")}
        return Pipeline(
            [
                ("prep", _preprocessor(problem, family, prep, seed)),
                ("model", _estimator(problem.task, family, model, seed)),
            ]
        )

    def feature_importances(
        self, problem: Problem, estimator, frame: pd.DataFrame, y, seconds: float | None = None
    ) -> dict[str, float]:
        """Permutation importance per input column on at most 300 rows (model-agnostic).

        Every permuted copy is stacked into one frame and predicted in a single call: one
        prediction per column would cost a pipeline call each on wide tables. With a time limit
        (`seconds`), the rows are fewer when the unpermuted sample's prediction time says 300 would
        not fit, down to 50; below that, no importances (empty)."""
        rng = np.random.default_rng(0)
        rows = rng.choice(len(frame), size=min(IMPORTANCE_ROWS, len(frame)), replace=False)
        if seconds is not None:
            started = time.perf_counter()
            _fit_quality(problem, estimator, frame.iloc[rows], np.asarray(y)[rows], blocks=1)
            # the stacked call predicts (columns + 1) copies of the sample
            per_row_s = (time.perf_counter() - started) / len(rows)
            size = int(seconds / (per_row_s * (frame.shape[1] + 1)))
            if size < min(MIN_IMPORTANCE_ROWS, len(rows)):
                return {}
            rows = rows[:size]
        sample, target = frame.iloc[rows].reset_index(drop=True), np.asarray(y)[rows]
        blocks = [sample]
        for column in sample.columns:
            shuffled = sample.copy()
            shuffled[column] = sample[column].to_numpy()[rng.permutation(len(sample))]
            blocks.append(shuffled)
        stacked = pd.concat(blocks, ignore_index=True)
        qualities = _fit_quality(
            problem, estimator, stacked, np.tile(target, len(blocks)), blocks=len(blocks)
        )
        importances = {
            c: max(0.0, qualities[0] - q) for c, q in zip(sample.columns, qualities[1:], strict=True)
        }
        return dict(sorted(importances.items(), key=lambda kv: -kv[1]))


def _fit_quality(problem: Problem, estimator, frame, y, blocks: int) -> list[float]:
    """Per block of rows, higher is better: accuracy for classifiers, -MSE/variance for regressors."""
    if problem.task == "regression":
        errors = (np.asarray(y, dtype=float) - np.asarray(estimator.predict(frame), dtype=float)) ** 2
        variance = np.var(np.asarray(y, dtype=float)) or 1.0
        return [-float(block.mean() / variance) for block in np.array_split(errors, blocks)]
    correct = np.asarray(estimator.predict_proba(frame)).argmax(axis=1) == np.asarray(y)
    return [float(block.mean()) for block in np.array_split(correct, blocks)]


def _preprocessor(problem: Problem, family: str, prep: dict[str, Any], seed: int):
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import (
        OneHotEncoder,
        OrdinalEncoder,
        RobustScaler,
        StandardScaler,
        TargetEncoder,
    )

    from loopml.modelkit.transformers import CategoryAsString, DatetimeExpander, TextColumn

    kinds = problem.features
    numeric = [c for c, k in kinds.items() if k in NUMERIC_KINDS]
    categorical = [c for c, k in kinds.items() if k == "categorical"]
    datetimes = [c for c, k in kinds.items() if k == "datetime"]
    texts = [c for c, k in kinds.items() if k == "text"]
    imputer = prep.get("numeric_imputer", "median")
    scaler = {"standard": StandardScaler(), "robust": RobustScaler()}.get(prep.get("scaler", "none"))

    def numeric_steps():
        steps = [("impute", SimpleImputer(strategy=imputer, add_indicator=family not in TREES))]
        return steps + ([("scale", scaler)] if scaler is not None else [])

    encoder_name = prep.get("categorical_encoder", "onehot")
    max_categories = int(prep.get("max_categories", 64))
    if encoder_name == "ordinal":
        encoder = OrdinalEncoder(
            handle_unknown="use_encoded_value",
            unknown_value=-1,
            encoded_missing_value=-1,
            max_categories=max_categories,
        )
    elif encoder_name == "target":
        target_type = (
            "continuous"
            if problem.task == "regression"
            else ("binary" if problem.task == "binary" else "multiclass")
        )
        from sklearn.model_selection import KFold, StratifiedKFold

        splitter = KFold if problem.task == "regression" else StratifiedKFold
        encoder = TargetEncoder(
            target_type=target_type, cv=splitter(n_splits=5, shuffle=True, random_state=seed)
        )
    else:
        encoder = OneHotEncoder(
            handle_unknown="infrequent_if_exist",
            max_categories=max_categories,
            min_frequency=0.01,
            sparse_output=False,
        )

    parts = []
    if numeric:
        parts.append(("numeric", Pipeline(numeric_steps()), numeric))
    if categorical:
        cat_steps = [("as_string", CategoryAsString()), ("encode", encoder)]
        if scaler is not None and encoder_name == "target":
            cat_steps.append(("scale", StandardScaler()))
        parts.append(("categorical", Pipeline(cat_steps), categorical))
    if datetimes:
        parts.append(("datetime", Pipeline([("expand", DatetimeExpander())] + numeric_steps()), datetimes))
    for column in texts:
        tfidf = TfidfVectorizer(max_features=int(prep.get("tfidf_max_features", 1000)), sublinear_tf=True)
        parts.append((f"text_{column}", Pipeline([("select", TextColumn()), ("tfidf", tfidf)]), [column]))
    return ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)


def _estimator(task: str, family: str, model: dict[str, Any], seed: int):
    classification = task != "regression"
    if family == "linear":
        if classification:
            from sklearn.linear_model import LogisticRegression

            return LogisticRegression(C=model.get("C", 1.0), max_iter=1000)
        from sklearn.linear_model import Ridge

        return Ridge(alpha=model.get("alpha", 1.0))
    if family == "knn":
        from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

        cls = KNeighborsClassifier if classification else KNeighborsRegressor
        return cls(n_neighbors=int(model.get("n_neighbors", 5)), weights=model.get("weights", "uniform"))
    if family in ("random_forest", "extra_trees"):
        from sklearn import ensemble

        name = ("RandomForest" if family == "random_forest" else "ExtraTrees") + (
            "Classifier" if classification else "Regressor"
        )
        return getattr(ensemble, name)(n_jobs=1, random_state=seed, **model)
    if family == "hist_gradient_boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        cls = HistGradientBoostingClassifier if classification else HistGradientBoostingRegressor
        return cls(random_state=seed, early_stopping=False, **model)
    if family == "xgboost":
        import xgboost

        cls = xgboost.XGBClassifier if classification else xgboost.XGBRegressor
        return cls(n_jobs=1, random_state=seed, tree_method="hist", verbosity=0, **model)
    if family == "mlp":
        from loopml.modelkit.mlp import TabularMLPClassifier, TabularMLPRegressor

        cls = TabularMLPClassifier if classification else TabularMLPRegressor
        return cls(random_state=seed, **model)
    raise ValueError(f"unknown model family {family!r}")
