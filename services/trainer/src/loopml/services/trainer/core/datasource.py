"""Where training data comes from. The engine reads through `DataSource`; the service uses the
dataset service over gRPC (`loopml.services.trainer.dataset_source.GrpcDataSource`), the core tests
an in-memory `FrameDataSource`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd

from loopml.runtime.errors import NotFound


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str  # numeric, integer, boolean, categorical, datetime, text, identifier
    role: str = "feature"  # label, feature, ignored, id, weight, time


@dataclass
class DatasetInfo:
    dataset_id: str
    version: int
    columns: list[ColumnInfo]
    row_count: int
    ready: bool = True
    splits: list[str] = field(default_factory=list)
    #: Rows in the validation part of each stored split.
    validation_rows: dict[str, int] = field(default_factory=dict)

    def label_kind(self, label: str) -> str:
        return next((c.type for c in self.columns if c.name == label), "")


class DataSource(Protocol):
    def describe(self, dataset_id: str, version: int) -> DatasetInfo:
        """The version (0 = latest) with its columns; NotFound for an unknown dataset or version."""

    def load(self, dataset_id: str, version: int, split_id: str = "", part: str = "") -> pd.DataFrame:
        """All rows, or one part ("train", "validation", "test") of a stored split."""

    def create_split(self, dataset_id: str, version: int, *, seed: int, stratify_column: str = "") -> str:
        """Store a seeded 75/25 train/test split on the version (stratified by `stratify_column` if
        given) and return its id."""


def infer_kind(series: pd.Series) -> str:
    """A column's logical type from its values (the dataset service does this properly)."""
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    if pd.api.types.is_integer_dtype(series):
        return "integer"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    values = series.dropna().astype(str)
    if len(values) and values.str.len().mean() > 30 and values.str.contains(" ").mean() > 0.5:
        return "text"
    return "categorical"


class FrameDataSource:
    """In-memory datasets: for the core's tests and the benchmark (no dataset service needed)."""

    def __init__(self):
        self._frames: dict[tuple[str, int], tuple[pd.DataFrame, str]] = {}
        self._roles: dict[tuple[str, int], dict[str, str]] = {}
        self._splits: dict[str, tuple[str, int, dict[str, list[int]]]] = {}
        self._lock = threading.Lock()

    def add(
        self, dataset_id: str, frame: pd.DataFrame, label: str = "", roles: dict[str, str] | None = None
    ) -> int:
        """A new version; `roles` gives columns a role other than feature (weight, id, ...)."""
        with self._lock:
            version = 1 + max((v for d, v in self._frames if d == dataset_id), default=0)
            self._frames[(dataset_id, version)] = (frame, label)
            self._roles[(dataset_id, version)] = dict(roles or {})
            return version

    def _get(self, dataset_id: str, version: int) -> tuple[int, pd.DataFrame, str]:
        with self._lock:
            versions = [v for d, v in self._frames if d == dataset_id]
            if not versions:
                raise NotFound("dataset", dataset_id)
            version = version or max(versions)
            if (dataset_id, version) not in self._frames:
                raise NotFound("dataset version", f"{dataset_id}/versions/{version}")
            frame, label = self._frames[(dataset_id, version)]
            return version, frame, label

    def describe(self, dataset_id: str, version: int) -> DatasetInfo:
        version, frame, label = self._get(dataset_id, version)
        roles = self._roles[(dataset_id, version)]
        columns = [
            ColumnInfo(c, infer_kind(frame[c]), "label" if c == label else roles.get(c, "feature"))
            for c in frame.columns
        ]
        splits = {s: parts for s, (d, v, parts) in self._splits.items() if (d, v) == (dataset_id, version)}
        return DatasetInfo(
            dataset_id,
            version,
            columns,
            len(frame),
            splits=list(splits),
            validation_rows={s: len(parts.get("validation", [])) for s, parts in splits.items()},
        )

    def load(self, dataset_id: str, version: int, split_id: str = "", part: str = "") -> pd.DataFrame:
        version, frame, _ = self._get(dataset_id, version)
        if not split_id:
            return frame
        if split_id not in self._splits or self._splits[split_id][:2] != (dataset_id, version):
            raise NotFound("split", split_id)
        return frame.iloc[self._splits[split_id][2].get(part, [])].reset_index(drop=True)

    def add_split(self, dataset_id: str, version: int, split_id: str, parts: dict[str, list[int]]) -> str:
        """A stored split given by its parts' row positions ("train", "validation", "test")."""
        with self._lock:
            self._splits[split_id] = (dataset_id, version, {k: sorted(v) for k, v in parts.items()})
        return split_id

    def create_split(self, dataset_id: str, version: int, *, seed: int, stratify_column: str = "") -> str:
        from sklearn.model_selection import train_test_split

        version, frame, _ = self._get(dataset_id, version)
        stratify = frame[stratify_column].astype(str) if stratify_column else None
        if stratify is not None and stratify.value_counts().min() < 2:
            stratify = None
        train, test = train_test_split(
            list(range(len(frame))), test_size=0.25, random_state=seed, stratify=stratify
        )
        split_id = f"split-{dataset_id}-{version}-{seed}-{stratify_column}"
        with self._lock:
            self._splits[split_id] = (dataset_id, version, {"train": sorted(train), "test": sorted(test)})
        return split_id
