"""`TrainerClient`: start, follow, inspect and cancel AutoML searches.

    with TrainerClient() as trainer:
        search = trainer.create_search("ds-123", label="churn", time_budget_s=60, register_model_name="churn")
        for event in trainer.watch(search.search_id):
            print(event.progress.fraction_done)
        board = trainer.leaderboard(search.search_id)

Methods take plain Python values and return the generated messages (`loopml.trainer.v1`).
"""

from __future__ import annotations

from collections.abc import Iterator

from google.protobuf import duration_pb2

from loopml.client.base import ServiceClient
from loopml.common.v1 import metric_pb2, refs_pb2, schema_pb2
from loopml.trainer.v1 import search_pb2, trainer_service_pb2_grpc
from loopml.trainer.v1 import trainer_service_pb2 as pb

FAMILIES = {
    "linear": search_pb2.MODEL_FAMILY_LINEAR,
    "knn": search_pb2.MODEL_FAMILY_KNN,
    "random_forest": search_pb2.MODEL_FAMILY_RANDOM_FOREST,
    "extra_trees": search_pb2.MODEL_FAMILY_EXTRA_TREES,
    "hist_gradient_boosting": search_pb2.MODEL_FAMILY_HIST_GRADIENT_BOOSTING,
    "xgboost": search_pb2.MODEL_FAMILY_XGBOOST,
    "mlp": search_pb2.MODEL_FAMILY_MLP,
}
TASKS = {
    "auto": 0,
    "binary": schema_pb2.TASK_TYPE_BINARY,
    "multiclass": schema_pb2.TASK_TYPE_MULTICLASS,
    "regression": schema_pb2.TASK_TYPE_REGRESSION,
}
STRATEGIES = {
    "tpe": search_pb2.SEARCH_STRATEGY_TPE,
    "random": search_pb2.SEARCH_STRATEGY_RANDOM,
    "cma_es": search_pb2.SEARCH_STRATEGY_CMA_ES,
    "qmc": search_pb2.SEARCH_STRATEGY_QMC,
    "grid": search_pb2.SEARCH_STRATEGY_GRID,
}
PRUNERS = {
    "none": search_pb2.PRUNER_NONE,
    "median": search_pb2.PRUNER_MEDIAN,
    "successive_halving": search_pb2.PRUNER_SUCCESSIVE_HALVING,
    "hyperband": search_pb2.PRUNER_HYPERBAND,
}
FINAL_STATES = (
    search_pb2.SEARCH_STATE_SUCCEEDED,
    search_pb2.SEARCH_STATE_FAILED,
    search_pb2.SEARCH_STATE_CANCELLED,
)


def _enum(mapping: dict, value: str | None, what: str) -> int:
    if value is None or value == "":
        return 0
    try:
        return mapping[value.lower()]
    except KeyError:
        raise ValueError(f"unknown {what} {value!r}; one of {', '.join(mapping)}") from None


def metric_value(name: str | None) -> int:
    return 0 if not name else metric_pb2.MetricName.Value(f"METRIC_NAME_{name.upper()}")


def metric_name(value: int) -> str:
    return metric_pb2.MetricName.Name(value).removeprefix("METRIC_NAME_").lower() if value else ""


def family_name(value: int) -> str:
    return search_pb2.ModelFamily.Name(value).removeprefix("MODEL_FAMILY_").lower()


def state_name(value: int) -> str:
    return search_pb2.SearchState.Name(value).removeprefix("SEARCH_STATE_")


def _duration(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


def build_spec(
    dataset_id: str,
    *,
    version: int = 0,
    label: str = "",
    task: str | None = None,
    metric: str | None = None,
    time_budget_s: float | None = None,
    max_trials: int = 0,
    families: list[str] | None = None,
    strategy: str | None = None,
    pruner: str | None = None,
    cv_folds: int | None = None,
    holdout_fraction: float | None = None,
    use_split_validation: bool = False,
    ensemble: bool | None = None,
    parallel_trials: int = 0,
    trial_time_limit_s: float | None = None,
    trial_memory_limit_bytes: int = 0,
    seed: int | None = None,
    split_id: str = "",
    register_model_name: str = "",
    warm_start_search_ids: list[str] | None = None,
    feature_columns: list[str] | None = None,
    weight_column: str = "",
    description: str = "",
    tags: dict[str, str] | None = None,
) -> search_pb2.SearchSpec:
    spec = search_pb2.SearchSpec(
        dataset=refs_pb2.DatasetRef(dataset_id=dataset_id, version=version),
        split_id=split_id,
        label_column=label,
        task=_enum(TASKS, task, "task"),
        metric=metric_value(metric),
        max_trials=max_trials,
        model_families=[_enum(FAMILIES, f, "model family") for f in families or []],
        strategy=_enum(STRATEGIES, strategy, "strategy"),
        pruner=_enum(PRUNERS, pruner, "pruner"),
        parallel_trials=parallel_trials,
        trial_memory_limit_bytes=trial_memory_limit_bytes,
        register_model_name=register_model_name,
        warm_start_search_ids=warm_start_search_ids or [],
        feature_columns=feature_columns or [],
        weight_column=weight_column,
        description=description,
        tags=tags or {},
    )
    if time_budget_s is not None:
        spec.time_budget.CopyFrom(_duration(time_budget_s))
    if trial_time_limit_s is not None:
        spec.trial_time_limit.CopyFrom(_duration(trial_time_limit_s))
    if cv_folds is not None:
        spec.validation.cv_folds = cv_folds
    elif holdout_fraction is not None:
        spec.validation.holdout_fraction = holdout_fraction
    elif use_split_validation:  # score on the stored split's (split_id) validation part
        spec.validation.use_split_validation = True
    if ensemble is not None:
        spec.ensemble = ensemble
    if seed is not None:
        spec.seed = seed
    return spec


class TrainerClient(ServiceClient):
    service = "trainer"
    stub_class = trainer_service_pb2_grpc.TrainerServiceStub
    full_name = "loopml.trainer.v1.TrainerService"

    def create_search(
        self, dataset_id: str, *, request_id: str = "", validate_only: bool = False, **spec_fields
    ) -> search_pb2.Search:
        """Start a search; keyword arguments are those of `build_spec` (label, time_budget_s, ...)."""
        spec = spec_fields.pop("spec", None) or build_spec(dataset_id, **spec_fields)
        request = pb.CreateSearchRequest(spec=spec, request_id=request_id, validate_only=validate_only)
        return self.call("CreateSearch", request, timeout=120).search

    def get_search(self, search_id: str) -> search_pb2.Search:
        return self.call("GetSearch", pb.GetSearchRequest(search_id=search_id)).search

    def list_searches(
        self,
        *,
        states: list[str] | None = None,
        dataset_id: str = "",
        model_name: str = "",
        tags: dict[str, str] | None = None,
        page_size: int = 0,
    ) -> Iterator[search_pb2.Search]:
        """Every matching search, newest first (pages followed)."""
        token = ""
        while True:
            response = self.call(
                "ListSearches",
                pb.ListSearchesRequest(
                    page_size=page_size,
                    page_token=token,
                    dataset_id=dataset_id,
                    register_model_name=model_name,
                    tags=tags or {},
                    states=[search_pb2.SearchState.Value(f"SEARCH_STATE_{s.upper()}") for s in states or []],
                ),
            )
            yield from response.searches
            token = response.next_page_token
            if not token:
                return

    def cancel_search(self, search_id: str, *, keep_best: bool = False) -> search_pb2.Search:
        return self.call(
            "CancelSearch", pb.CancelSearchRequest(search_id=search_id, keep_best=keep_best)
        ).search

    def watch(
        self, search_id: str, *, after_sequence: int | None = None, timeout: float | None = 0
    ) -> Iterator[pb.WatchSearchResponse]:
        """Events until the search reaches a final state (no deadline by default)."""
        request = pb.WatchSearchRequest(search_id=search_id)
        if after_sequence is not None:
            request.after_sequence = after_sequence
        yield from self.stream("WatchSearch", request, timeout=timeout)

    def wait(self, search_id: str, *, timeout: float | None = 0) -> search_pb2.Search:
        """Follow the search to its final state and return it."""
        for _ in self.watch(search_id, timeout=timeout):
            pass
        return self.get_search(search_id)

    def leaderboard(
        self, search_id: str, *, include_unscored: bool = False, page_size: int = 0
    ) -> pb.GetLeaderboardResponse:
        """The whole leaderboard (pages joined) in one response message."""
        out, token = None, ""
        while True:
            page = self.call(
                "GetLeaderboard",
                pb.GetLeaderboardRequest(
                    search_id=search_id,
                    page_size=page_size,
                    page_token=token,
                    include_unscored=include_unscored,
                ),
            )
            if out is None:
                out = page
            else:
                out.entries.extend(page.entries)
            token = page.next_page_token
            if not token:
                out.next_page_token = ""
                return out
