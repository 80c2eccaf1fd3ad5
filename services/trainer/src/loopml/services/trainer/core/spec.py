"""The domain form of a search request (no protobuf), and its validation against the data."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from loopml.runtime.errors import FailedPrecondition, InvalidArgument
from loopml.services.trainer.core.datasource import DatasetInfo
from loopml.services.trainer.core.metrics import DEFAULT_METRIC, METRICS
from loopml.services.trainer.core.tasks.base import Problem
from loopml.services.trainer.core.tasks.tabular import FAMILIES

STRATEGIES = ("tpe", "random", "cma_es", "qmc", "grid")
PRUNERS = ("none", "median", "successive_halving", "hyperband")
FEATURE_KINDS = ("numeric", "integer", "boolean", "categorical", "datetime", "text")


@dataclass
class SearchSpec:
    dataset_id: str
    dataset_version: int = 0
    split_id: str = ""
    label: str = ""
    task: str = ""  # "" = infer
    metric: str = ""  # "" = the task's default
    time_budget_s: float | None = None
    max_trials: int = 0
    families: list[str] = field(default_factory=list)
    strategy: str = "tpe"
    pruner: str = "median"
    cv_folds: int = 0
    holdout_fraction: float = 0.0
    #: Score on the stored split's validation part (train on its train part) instead of CV/holdout.
    use_split_validation: bool = False
    ensemble: bool = True
    parallel_trials: int = 0
    trial_time_limit_s: float = 0.0
    trial_memory_limit_bytes: int = 0
    seed: int | None = None
    warm_start_search_ids: list[str] = field(default_factory=list)
    register_model_name: str = ""
    feature_columns: list[str] = field(default_factory=list)
    weight_column: str = ""  # "" = the column with role weight, if any
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchSpec:
        return cls(**data)


def check_request(spec: SearchSpec) -> None:
    """Checks that need no data: budget, families, strategy, limits."""
    if spec.time_budget_s is None and spec.max_trials <= 0:
        raise InvalidArgument("spec.time_budget", "set a time budget or max_trials")
    if spec.time_budget_s is not None and spec.time_budget_s <= 0:
        raise InvalidArgument("spec.time_budget", f"must be positive, got {spec.time_budget_s} s")
    if spec.max_trials < 0:
        raise InvalidArgument("spec.max_trials", "must be >= 0")
    for i, family in enumerate(spec.families):
        if family not in FAMILIES:
            raise InvalidArgument(
                f"spec.model_families[{i}]", f"unknown model family {family!r}; known: {', '.join(FAMILIES)}"
            )
    if spec.strategy not in STRATEGIES:
        raise InvalidArgument("spec.strategy", f"unknown strategy {spec.strategy!r}")
    if spec.pruner not in PRUNERS:
        raise InvalidArgument("spec.pruner", f"unknown pruner {spec.pruner!r}")
    if spec.metric and spec.metric not in METRICS:
        raise InvalidArgument("spec.metric", f"unknown metric {spec.metric!r}")
    if spec.cv_folds < 0 or spec.cv_folds == 1:
        raise InvalidArgument("spec.validation.cv_folds", "needs at least 2 folds")
    if not 0 <= spec.holdout_fraction < 1:
        raise InvalidArgument("spec.validation.holdout_fraction", "must be in (0, 1)")
    if spec.use_split_validation and not spec.split_id:
        raise InvalidArgument(
            "spec.validation.use_split_validation",
            "needs a stored split: set split_id to one with validation rows",
        )
    for name, value in (
        ("parallel_trials", spec.parallel_trials),
        ("trial_memory_limit_bytes", spec.trial_memory_limit_bytes),
        ("trial_time_limit", spec.trial_time_limit_s),
    ):
        if value < 0:
            raise InvalidArgument(f"spec.{name}", "must be >= 0")
    if spec.parallel_trials > 64:
        raise InvalidArgument("spec.parallel_trials", "at most 64")


def resolve(spec: SearchSpec, info: DatasetInfo, frame: pd.DataFrame) -> tuple[SearchSpec, Problem]:
    """Fill the automatic choices from the data and check the request against it."""
    if not info.ready:
        raise FailedPrecondition(
            f"dataset {info.dataset_id} version {info.version} is not READY",
            subject=f"datasets/{info.dataset_id}/versions/{info.version}",
        )
    spec.dataset_version = info.version
    label = spec.label or next((c.name for c in info.columns if c.role == "label"), "")
    if not label:
        raise InvalidArgument("spec.label_column", "no label column given and the dataset version has none")
    if label not in frame.columns:
        raise InvalidArgument(
            "spec.label_column", f"column {label!r} is not in dataset {info.dataset_id} v{info.version}"
        )
    spec.label = label
    target = frame[label]
    if target.isna().all():
        raise InvalidArgument("spec.label_column", f"label {label!r} has no values")
    distinct = target.dropna().nunique()
    if distinct < 2:
        raise InvalidArgument(
            "spec.label_column", f"label {label!r} is constant (a single class): nothing to learn"
        )
    task = spec.task or _infer_task(target, info.label_kind(label))
    if task == "binary" and distinct > 2:
        raise InvalidArgument("spec.task", f"task binary but label {label!r} has {distinct} classes")
    if task == "regression" and not pd.api.types.is_numeric_dtype(target):
        raise InvalidArgument("spec.task", f"task regression needs a numeric label; {label!r} is not")
    spec.task = task
    metric = spec.metric or DEFAULT_METRIC[task]
    if not METRICS[metric].fits(task):
        raise InvalidArgument("spec.metric", f"metric {metric} does not fit task {task}")
    spec.metric = metric

    weight = spec.weight_column or next((c.name for c in info.columns if c.role == "weight"), "")
    if weight:
        _check_weights(frame, weight, label)
    spec.weight_column = weight

    kinds = {c.name: c.type for c in info.columns}
    if spec.feature_columns:
        for i, column in enumerate(spec.feature_columns):
            if column not in frame.columns or column in (label, weight):
                raise InvalidArgument(
                    f"spec.feature_columns[{i}]", f"{column!r} is not a feature column of the dataset"
                )
        features = list(spec.feature_columns)
    else:
        roles = {c.name: c.role for c in info.columns}
        features = [
            c
            for c in frame.columns
            if c not in (label, weight)
            and roles.get(c, "feature") in ("feature", "")
            and kinds.get(c) in FEATURE_KINDS
        ]
    if not features:
        raise InvalidArgument("spec.feature_columns", "no usable feature columns")
    spec.feature_columns = features

    rows = int(target.notna().sum())
    if spec.use_split_validation:
        pass  # validated on the split's validation part; its size is checked against the split
    elif spec.cv_folds == 0 and spec.holdout_fraction == 0:
        if large_for_budget(rows, spec.time_budget_s):
            spec.holdout_fraction = 0.2
        else:
            spec.cv_folds = 5 if rows < 5_000 else 3
    if spec.cv_folds and rows < spec.cv_folds:
        raise InvalidArgument(
            "spec.validation.cv_folds", f"{spec.cv_folds} folds but only {rows} labelled rows"
        )
    if task != "regression" and spec.cv_folds:
        smallest = int(target.value_counts().min())
        if smallest < 2:
            raise InvalidArgument(
                "spec.label_column", f"a class of {label!r} has a single row; every class needs 2"
            )
    spec.families = spec.families or list(FAMILIES)
    if spec.seed is None:
        spec.seed = int(np.random.default_rng().integers(0, 2**31 - 1))
    classes = sorted(target.dropna().unique().tolist(), key=str) if task != "regression" else []
    problem = Problem(
        task=task,
        label=label,
        features={c: kinds.get(c, "numeric") for c in features},
        classes=classes,
        n_rows=rows,
    )
    return spec, problem


#: Rows per second of time budget above which (with at least HOLDOUT_MIN_ROWS rows) a search
#: scores trials on one holdout split instead of k folds: 3-fold CV would leave time for only a
#: handful of trials (40k rows at 60 s: 7 trials).
HOLDOUT_ROWS_PER_BUDGET_S = 250
HOLDOUT_MIN_ROWS = 20_000


def large_for_budget(rows: int, time_budget_s: float | None) -> bool:
    """Whether the default validation is a 20% holdout rather than cross-validation."""
    if rows > 50_000:
        return True
    return (
        bool(time_budget_s) and rows >= HOLDOUT_MIN_ROWS and rows > HOLDOUT_ROWS_PER_BUDGET_S * time_budget_s
    )


#: Cells (rows x feature columns) per second of time budget above which a search expects few
#: trials even under cross-validation: ames (2,197 rows x 73 columns at 60 s) ran 6-7 trials, its
#: first, the MLP, took 13 s of them. (digits, 1,347 x 64, and wa_churn, 5,282 x 19, stay below.)
FEW_TRIALS_CELLS_PER_BUDGET_S = 2_500


def few_trials_expected(problem: Problem, time_budget_s: float | None) -> bool:
    """Whether the data is large for the budget (the portfolio then starts with quick families)."""
    if large_for_budget(problem.n_rows, time_budget_s):
        return True
    cells = problem.n_rows * len(problem.features)
    return bool(time_budget_s) and cells > FEW_TRIALS_CELLS_PER_BUDGET_S * time_budget_s


def _infer_task(target: pd.Series, kind: str) -> str:
    values = target.dropna()
    distinct = values.nunique()
    if distinct == 2:
        return "binary"
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric:
        integral = bool(np.all(np.mod(values.to_numpy(dtype=float), 1) == 0))
        if not integral or distinct > 20 or kind == "numeric":
            return "regression"
    return "multiclass"


def _check_weights(frame: pd.DataFrame, column: str, label: str) -> None:
    """Sample weights: a numeric column, finite and >= 0 on every labelled row, not all zero."""
    if column not in frame.columns or column == label:
        raise InvalidArgument(
            "spec.weight_column", f"{column!r} is not a column of the dataset besides the label"
        )
    values = frame.loc[frame[label].notna(), column]
    if not pd.api.types.is_numeric_dtype(values):
        raise InvalidArgument("spec.weight_column", f"weight column {column!r} is not numeric")
    numbers = values.to_numpy(dtype=float)
    if not np.isfinite(numbers).all() or (numbers < 0).any() or numbers.sum() <= 0:
        raise InvalidArgument(
            "spec.weight_column",
            f"weights in {column!r} must be finite and >= 0 on every labelled row, and not all zero",
        )
