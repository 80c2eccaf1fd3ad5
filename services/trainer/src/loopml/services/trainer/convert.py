"""Protobuf <-> domain converters of the trainer (with api.py, the only modules that touch *_pb2)."""

from __future__ import annotations

import math
from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2

from loopml.common.v1 import metric_pb2, refs_pb2, schema_pb2, value_pb2
from loopml.runtime.errors import InvalidArgument
from loopml.services.trainer.core.spec import SearchSpec
from loopml.services.trainer.core.state import Event, Progress, SearchView, TrialView
from loopml.trainer.v1 import search_pb2
from loopml.trainer.v1 import trainer_service_pb2 as pb

FAMILY_TO_PROTO = {
    "linear": search_pb2.MODEL_FAMILY_LINEAR,
    "knn": search_pb2.MODEL_FAMILY_KNN,
    "random_forest": search_pb2.MODEL_FAMILY_RANDOM_FOREST,
    "extra_trees": search_pb2.MODEL_FAMILY_EXTRA_TREES,
    "hist_gradient_boosting": search_pb2.MODEL_FAMILY_HIST_GRADIENT_BOOSTING,
    "xgboost": search_pb2.MODEL_FAMILY_XGBOOST,
    "mlp": search_pb2.MODEL_FAMILY_MLP,
    "ensemble": search_pb2.MODEL_FAMILY_ENSEMBLE,
}
FAMILY_FROM_PROTO = {v: k for k, v in FAMILY_TO_PROTO.items()}
TASK_TO_PROTO = {
    "binary": schema_pb2.TASK_TYPE_BINARY,
    "multiclass": schema_pb2.TASK_TYPE_MULTICLASS,
    "regression": schema_pb2.TASK_TYPE_REGRESSION,
}
TASK_FROM_PROTO = {v: k for k, v in TASK_TO_PROTO.items()}
STRATEGY = {
    search_pb2.SEARCH_STRATEGY_UNSPECIFIED: "tpe",
    search_pb2.SEARCH_STRATEGY_TPE: "tpe",
    search_pb2.SEARCH_STRATEGY_RANDOM: "random",
    search_pb2.SEARCH_STRATEGY_CMA_ES: "cma_es",
    search_pb2.SEARCH_STRATEGY_QMC: "qmc",
    search_pb2.SEARCH_STRATEGY_GRID: "grid",
}
STRATEGY_TO_PROTO = {v: k for k, v in STRATEGY.items() if k}
PRUNER = {
    search_pb2.PRUNER_UNSPECIFIED: "median",
    search_pb2.PRUNER_NONE: "none",
    search_pb2.PRUNER_MEDIAN: "median",
    search_pb2.PRUNER_SUCCESSIVE_HALVING: "successive_halving",
    search_pb2.PRUNER_HYPERBAND: "hyperband",
}
PRUNER_TO_PROTO = {v: k for k, v in PRUNER.items() if k}
TRIAL_STATE = {
    "RUNNING": search_pb2.TRIAL_STATE_RUNNING,
    "COMPLETE": search_pb2.TRIAL_STATE_COMPLETE,
    "PRUNED": search_pb2.TRIAL_STATE_PRUNED,
    "FAILED": search_pb2.TRIAL_STATE_FAILED,
}
SEARCH_STATE = {
    name: search_pb2.SearchState.Value(f"SEARCH_STATE_{name}")
    for name in ("PENDING", "RUNNING", "FINALIZING", "SUCCEEDED", "FAILED", "CANCELLED")
}
SEARCH_STATE_FROM_PROTO = {v: k for k, v in SEARCH_STATE.items()}


def metric_to_proto(name: str) -> int:
    return metric_pb2.MetricName.Value(f"METRIC_NAME_{name.upper()}")


def metric_from_proto(value: int) -> str:
    return "" if value == 0 else metric_pb2.MetricName.Name(value).removeprefix("METRIC_NAME_").lower()


# -- requests ----------------------------------------------------------------------------------------


def spec_from_proto(spec: search_pb2.SearchSpec) -> SearchSpec:
    if not spec.dataset.dataset_id:
        raise InvalidArgument("spec.dataset.dataset_id", "required")
    families = []
    for i, family in enumerate(spec.model_families):
        if family not in FAMILY_FROM_PROTO or family == search_pb2.MODEL_FAMILY_ENSEMBLE:
            raise InvalidArgument(
                f"spec.model_families[{i}]", f"unknown or not allowed model family {family}"
            )
        families.append(FAMILY_FROM_PROTO[family])
    if spec.task and spec.task not in TASK_FROM_PROTO:
        raise InvalidArgument("spec.task", f"unknown task {spec.task}")
    if spec.metric and spec.metric not in metric_pb2.MetricName.values():
        raise InvalidArgument("spec.metric", f"unknown metric {spec.metric}")
    if spec.strategy not in STRATEGY:
        raise InvalidArgument("spec.strategy", f"unknown strategy {spec.strategy}")
    if spec.pruner not in PRUNER:
        raise InvalidArgument("spec.pruner", f"unknown pruner {spec.pruner}")
    if spec.HasField("time_budget"):
        budget = spec.time_budget.seconds + spec.time_budget.nanos / 1e9
    else:
        budget = None
    method = spec.validation.WhichOneof("method")
    if method == "cv_folds" and spec.validation.cv_folds < 2:
        raise InvalidArgument("spec.validation.cv_folds", "needs at least 2 folds")
    if method == "holdout_fraction" and not 0 < spec.validation.holdout_fraction < 1:
        raise InvalidArgument("spec.validation.holdout_fraction", "must be in (0, 1)")
    return SearchSpec(
        dataset_id=spec.dataset.dataset_id,
        dataset_version=spec.dataset.version,
        split_id=spec.split_id,
        label=spec.label_column,
        task=TASK_FROM_PROTO.get(spec.task, ""),
        metric=metric_from_proto(spec.metric),
        time_budget_s=budget,
        max_trials=spec.max_trials,
        families=families,
        strategy=STRATEGY[spec.strategy],
        pruner=PRUNER[spec.pruner],
        cv_folds=spec.validation.cv_folds if method == "cv_folds" else 0,
        holdout_fraction=spec.validation.holdout_fraction if method == "holdout_fraction" else 0.0,
        use_split_validation=method == "use_split_validation" and spec.validation.use_split_validation,
        ensemble=spec.ensemble if spec.HasField("ensemble") else True,
        parallel_trials=spec.parallel_trials,
        trial_time_limit_s=_seconds(spec.trial_time_limit) if spec.HasField("trial_time_limit") else 0.0,
        trial_memory_limit_bytes=spec.trial_memory_limit_bytes,
        seed=spec.seed if spec.HasField("seed") else None,
        warm_start_search_ids=list(spec.warm_start_search_ids),
        register_model_name=spec.register_model_name,
        feature_columns=list(spec.feature_columns),
        weight_column=spec.weight_column,
        description=spec.description,
        tags=dict(spec.tags),
    )


def spec_to_proto(spec: dict) -> search_pb2.SearchSpec:
    message = search_pb2.SearchSpec(
        dataset=refs_pb2.DatasetRef(dataset_id=spec["dataset_id"], version=spec["dataset_version"]),
        split_id=spec["split_id"],
        label_column=spec["label"],
        task=TASK_TO_PROTO.get(spec["task"], 0),
        metric=metric_to_proto(spec["metric"]) if spec["metric"] else 0,
        max_trials=spec["max_trials"],
        model_families=[FAMILY_TO_PROTO[f] for f in spec["families"]],
        strategy=STRATEGY_TO_PROTO[spec["strategy"]],
        pruner=PRUNER_TO_PROTO[spec["pruner"]],
        ensemble=spec["ensemble"],
        parallel_trials=spec["parallel_trials"],
        trial_memory_limit_bytes=spec["trial_memory_limit_bytes"],
        warm_start_search_ids=spec["warm_start_search_ids"],
        register_model_name=spec["register_model_name"],
        feature_columns=spec["feature_columns"],
        weight_column=spec.get("weight_column", ""),
        description=spec["description"],
        tags=spec["tags"],
    )
    if spec["seed"] is not None:
        message.seed = spec["seed"]
    if spec["time_budget_s"] is not None:
        message.time_budget.CopyFrom(_duration(spec["time_budget_s"]))
    if spec["trial_time_limit_s"]:
        message.trial_time_limit.CopyFrom(_duration(spec["trial_time_limit_s"]))
    if spec["cv_folds"]:
        message.validation.cv_folds = spec["cv_folds"]
    elif spec["holdout_fraction"]:
        message.validation.holdout_fraction = spec["holdout_fraction"]
    elif spec.get("use_split_validation"):
        message.validation.use_split_validation = True
    return message


# -- responses ---------------------------------------------------------------------------------------


def _seconds(duration: duration_pb2.Duration) -> float:
    return duration.seconds + duration.nanos / 1e9


def _duration(seconds: float) -> duration_pb2.Duration:
    message = duration_pb2.Duration()
    message.FromNanoseconds(int(max(seconds, 0.0) * 1e9))
    return message


def _timestamp(seconds: float | None) -> timestamp_pb2.Timestamp | None:
    if seconds is None:
        return None
    message = timestamp_pb2.Timestamp()
    message.FromNanoseconds(int(seconds * 1e9))
    return message


def to_value(value: Any) -> value_pb2.Value:
    if value is None:
        return value_pb2.Value(null_value=0)
    if isinstance(value, bool):
        return value_pb2.Value(bool_value=value)
    if isinstance(value, int):
        return value_pb2.Value(int64_value=value)
    if isinstance(value, float):
        return value_pb2.Value(double_value=value)
    return value_pb2.Value(string_value=str(value))


def trial_to_proto(trial: TrialView, metric: str) -> search_pb2.Trial:
    message = search_pb2.Trial(
        trial_id=trial.trial_id,
        number=max(trial.number, 0),
        family=FAMILY_TO_PROTO.get(trial.family, 0),
        params={k: to_value(v) for k, v in trial.params.items()},
        state=TRIAL_STATE[trial.state],
        failure_reason=trial.failure_reason,
        worker_id=trial.worker_id,
        from_portfolio=trial.from_portfolio,
        fit_duration=_duration(trial.fit_s),
        predict_latency=_duration(trial.predict_latency_s),
    )
    if trial.score is not None:
        message.score = trial.score
    if trial.score_std is not None:
        message.score_std = trial.score_std
    for name, value in trial.metrics.items():
        if math.isfinite(value):
            message.metrics.add(
                metric=metric_to_proto(name),
                value=value,
                evaluation_set=metric_pb2.EVALUATION_SET_CROSS_VALIDATION,
            )
    if trial.start_time:
        message.start_time.CopyFrom(_timestamp(trial.start_time))
    if trial.end_time:
        message.end_time.CopyFrom(_timestamp(trial.end_time))
    return message


def progress_to_proto(progress: Progress) -> search_pb2.SearchProgress:
    return search_pb2.SearchProgress(
        completed_trials=progress.completed,
        pruned_trials=progress.pruned,
        failed_trials=progress.failed,
        running_trials=progress.running,
        elapsed=_duration(progress.elapsed_s),
        time_left=_duration(progress.time_left_s),
        fraction_done=progress.fraction_done,
    )


def result_to_proto(result: dict, metric: str) -> search_pb2.SearchResult:
    message = search_pb2.SearchResult(
        best_trial_id=result["best_trial_id"],
        family=FAMILY_TO_PROTO.get(result["family"], 0),
        artifact_uri=result["artifact_uri"],
        artifact_sha256=result["artifact_sha256"],
    )
    message.score.CopyFrom(
        metric_pb2.MetricScore(
            metric=metric_to_proto(metric),
            value=result["score"],
            evaluation_set=metric_pb2.EVALUATION_SET_CROSS_VALIDATION,
        )
    )
    if result.get("score_std") is not None:
        message.score.std = result["score_std"]
    for name, value in result.get("test_metrics", {}).items():
        message.test_metrics.add(
            metric=metric_to_proto(name), value=value, evaluation_set=metric_pb2.EVALUATION_SET_TEST
        )
    for member in result.get("ensemble_members", []):
        message.ensemble_members.add(
            trial_id=member["trial_id"],
            family=FAMILY_TO_PROTO.get(member["family"], 0),
            weight=member["weight"],
        )
    for feature, importance in result.get("feature_importances", {}).items():
        message.feature_importances.add(feature=feature, importance=importance)
    message.registration_error = result.get("registration_error", "")
    message.registration_pending = bool(result.get("registration_pending", False))
    if result.get("registered_model"):
        message.registered_model.CopyFrom(
            refs_pb2.ModelRef(
                name=result["registered_model"]["name"], version=result["registered_model"]["version"]
            )
        )
    return message


def search_to_proto(view: SearchView) -> search_pb2.Search:
    metric = view.spec["metric"]
    message = search_pb2.Search(
        search_id=view.search_id,
        spec=spec_to_proto(view.spec),
        state=SEARCH_STATE[view.state],
        failure_reason=view.failure_reason,
        progress=progress_to_proto(view.progress),
        create_time=_timestamp(view.create_time),
        created_by=view.created_by,
    )
    for failure in view.family_failures:
        message.family_failures.add(
            family=FAMILY_TO_PROTO.get(failure["family"], 0),
            failed_trials=failure["failed_trials"],
            reason=failure["reason"],
        )
    if view.best_trial is not None:
        message.best_trial.CopyFrom(trial_to_proto(view.best_trial, metric))
    if view.result:
        message.result.CopyFrom(result_to_proto(view.result, metric))
    if view.start_time:
        message.start_time.CopyFrom(_timestamp(view.start_time))
    if view.end_time:
        message.end_time.CopyFrom(_timestamp(view.end_time))
    return message


def event_to_proto(event: Event, progress: Progress, metric: str) -> pb.WatchSearchResponse:
    message = pb.WatchSearchResponse(
        sequence=event.sequence, event_time=_timestamp(event.event_time), progress=progress_to_proto(progress)
    )
    payload = event.payload
    if event.kind == "state_changed":
        message.state_changed.CopyFrom(
            pb.SearchStateChanged(
                previous_state=SEARCH_STATE.get(payload["previous"], 0),
                state=SEARCH_STATE[payload["state"]],
                reason=payload.get("reason", ""),
            )
        )
    elif event.kind == "trial_started":
        message.trial_started.trial.CopyFrom(trial_to_proto(TrialView(**payload), metric))
    elif event.kind == "trial_finished":
        message.trial_finished.trial.CopyFrom(trial_to_proto(TrialView(**payload), metric))
    elif event.kind == "best_trial_changed":
        message.best_trial_changed.trial.CopyFrom(trial_to_proto(TrialView(**payload["trial"]), metric))
        if payload.get("previous_score") is not None:
            message.best_trial_changed.previous_score = payload["previous_score"]
    return message


def leaderboard_entry(
    rank: int, trial: TrialView, members: list[dict], metric: str
) -> search_pb2.LeaderboardEntry:
    entry = search_pb2.LeaderboardEntry(rank=rank, trial=trial_to_proto(trial, metric))
    for member in members:
        entry.ensemble_members.add(
            trial_id=member["trial_id"],
            family=FAMILY_TO_PROTO.get(member["family"], 0),
            weight=member["weight"],
        )
    return entry
