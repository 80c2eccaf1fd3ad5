"""Domain values of the metrics service: plain dataclasses, no protobuf."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Aggregation(enum.Enum):
    SUM = "sum"
    AVG = "avg"
    MIN = "min"
    MAX = "max"
    COUNT = "count"
    RATE = "rate"
    QUANTILE = "quantile"


class MatchOp(enum.Enum):
    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


@dataclass(frozen=True)
class Point:
    name: str
    labels: dict[str, str]
    value: float
    time: float  # epoch seconds


@dataclass(frozen=True)
class Matcher:
    label: str
    op: MatchOp
    value: str


@dataclass(frozen=True)
class Query:
    name: str
    start: float
    end: float
    step: float
    aggregation: Aggregation = Aggregation.AVG
    matchers: tuple[Matcher, ...] = ()
    quantile: float = 0.0
    group_by: tuple[str, ...] = ()


@dataclass
class Series:
    name: str
    labels: dict[str, str]
    samples: list[tuple[float, float]]  # (step start, value), oldest first


@dataclass
class PredictionRecord:
    """One logged request (a batch of rows). The record itself travels as an opaque `payload`
    (encoded by the API layer, decoded by the repository's codec into a dict with inputs,
    predictions, classes, probabilities and labels); the core checks only its shape."""

    request_id: str
    model_name: str
    model_version: int
    time: float
    row_count: int
    payload: bytes
    column_lengths: dict[str, int] = field(default_factory=dict)  # input column -> cells
    prediction_count: int = 0
    probability_count: int = 0
    class_count: int = 0
    latency_s: float = 0.0


@dataclass(frozen=True)
class Feedback:
    request_id: str
    row: int
    actual: Any
    business: dict[str, float]
    time: float


@dataclass
class FeedbackResult:
    accepted: int = 0
    unknown: int = 0
    expired: int = 0
    rejected_request_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Score:
    metric: str  # "accuracy", "roc_auc", "log_loss", "rmse", "mae", ...
    value: float
    std: float | None = None
    evaluation_set: str = "online"


@dataclass
class VersionPerformance:
    version: int
    online: list[Score]
    training: list[Score]
    prediction_count: int
    feedback_count: int
    training_note: str = ""

    @property
    def coverage(self) -> float:
        return self.feedback_count / self.prediction_count if self.prediction_count else 0.0


@dataclass
class ModelPerformance:
    model_name: str
    start: float
    end: float
    versions: list[VersionPerformance]


@dataclass(frozen=True)
class VersionInfo:
    """What the registry knows about a model version (what the metrics service needs of it)."""

    model_name: str
    version: int
    task: str = ""  # "binary", "multiclass", "regression" or ""
    inputs: tuple[str, ...] = ()
    class_labels: tuple[Any, ...] = ()
    label_column: str = ""
    training_metrics: tuple[Score, ...] = ()
    dataset_id: str = ""
    dataset_version: int = 0
    split_id: str = ""
    search_id: str = ""
