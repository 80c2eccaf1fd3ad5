"""Domain values of the dataset service: plain dataclasses and string enums, no protobuf."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class DataFormat(enum.StrEnum):
    CSV = "csv"
    TSV = "tsv"
    PARQUET = "parquet"
    JSONL = "jsonl"


class Compression(enum.StrEnum):
    NONE = "none"
    GZIP = "gzip"


class ColumnType(enum.StrEnum):
    NUMERIC = "numeric"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    CATEGORICAL = "categorical"
    DATETIME = "datetime"
    TEXT = "text"
    IDENTIFIER = "identifier"


class ColumnRole(enum.StrEnum):
    LABEL = "label"
    FEATURE = "feature"
    IGNORED = "ignored"
    ID = "id"
    WEIGHT = "weight"
    TIME = "time"


class TaskType(enum.StrEnum):
    BINARY = "binary"
    MULTICLASS = "multiclass"
    REGRESSION = "regression"


class SplitStrategy(enum.StrEnum):
    AUTO = "auto"  # stratified for classification, random otherwise
    RANDOM = "random"
    STRATIFIED = "stratified"
    GROUP = "group"
    TIME = "time"


class SplitPart(enum.StrEnum):
    TRAIN = "train"
    VALIDATION = "validation"
    TEST = "test"


#: Code of each part in a stored split assignment (one int8 per row).
PART_CODES = {SplitPart.TRAIN: 0, SplitPart.VALIDATION: 1, SplitPart.TEST: 2}


@dataclass
class CsvOptions:
    delimiter: str = ""
    quote_char: str = ""
    no_header: bool = False
    null_values: list[str] = field(default_factory=list)


@dataclass
class IngestOptions:
    """What the uploader says about the bytes (everything optional)."""

    name: str
    description: str = ""
    filename: str = ""
    format: DataFormat | None = None
    compression: Compression | None = None
    csv: CsvOptions = field(default_factory=CsvOptions)
    size_bytes: int = 0
    sha256: str = ""
    label_column: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    created_by: str = ""


@dataclass
class Column:
    name: str
    index: int
    inferred_type: ColumnType
    inference_reason: str
    nullable: bool
    physical_type: str
    type_override: ColumnType | None = None
    role_override: ColumnRole | None = None
    default_role: ColumnRole = ColumnRole.FEATURE

    @property
    def type(self) -> ColumnType:
        return self.type_override or self.inferred_type

    @property
    def role(self) -> ColumnRole:
        return self.role_override or self.default_role


@dataclass
class TaskInference:
    label_column: str
    task: TaskType
    reason: str
    class_labels: list[Any] = field(default_factory=list)


@dataclass
class SplitSpec:
    strategy: SplitStrategy = SplitStrategy.AUTO
    train_ratio: float = 0.0
    validation_ratio: float = 0.0
    test_ratio: float = 0.0
    seed: int = 0
    stratify_column: str = ""
    group_column: str = ""
    time_column: str = ""


@dataclass
class Split:
    split_id: str
    name: str
    dataset_id: str
    version: int
    spec: SplitSpec
    train_rows: int
    validation_rows: int
    test_rows: int
    create_time: datetime
    key: str = ""


@dataclass
class Dataset:
    dataset_id: str
    name: str
    description: str
    tags: dict[str, str]
    latest_version: int
    version_count: int
    create_time: datetime
    update_time: datetime
    created_by: str = ""


@dataclass
class DatasetVersion:
    dataset_id: str
    version: int
    source: str  # "upload" | "import"
    filename: str
    format: DataFormat
    compression: Compression
    original_key: str
    original_uri: str
    canonical_key: str
    canonical_uri: str
    key_prefix: str
    sha256: str
    size_bytes: int
    row_count: int
    columns: list[Column]
    task: TaskInference | None
    profile: dict
    splits: list[Split]
    create_time: datetime
    created_by: str = ""

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def label(self) -> str:
        return next((c.name for c in self.columns if c.role == ColumnRole.LABEL), "")
