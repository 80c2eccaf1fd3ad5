"""The registry's domain objects: plain dataclasses, no protobuf.

Rich sub-documents (signature, metrics, params, lineage, feature importances) are kept as the
JSON-able dicts the API layer hands over: the registry stores and returns them unchanged and only
reads the few lineage fields it filters on (see `lineage_keys`).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import Enum, StrEnum

from loopml.runtime.errors import InvalidArgument

MODEL_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
ALIAS_PATTERN = r"[a-z][a-z0-9_-]{0,63}"
#: Alias names with a meaning of their own in ModelRef.
RESERVED_ALIASES = frozenset({"latest"})

_MODEL_NAME = re.compile(MODEL_NAME_PATTERN)
_ALIAS = re.compile(ALIAS_PATTERN)


def validate_model_name(name: str, field_name: str = "name") -> str:
    if not name:
        raise InvalidArgument(field_name, f"is required; allowed pattern: {MODEL_NAME_PATTERN}")
    if not _MODEL_NAME.fullmatch(name):
        raise InvalidArgument(
            field_name, f"{name!r} is not a valid model name; allowed pattern: {MODEL_NAME_PATTERN}"
        )
    return name


def validate_alias(alias: str, field_name: str = "alias") -> str:
    if not alias:
        raise InvalidArgument(field_name, f"is required; allowed pattern: {ALIAS_PATTERN}")
    if alias in RESERVED_ALIASES:
        raise InvalidArgument(field_name, f"{alias!r} is reserved")
    if not _ALIAS.fullmatch(alias):
        raise InvalidArgument(field_name, f"{alias!r} is not a valid alias; allowed pattern: {ALIAS_PATTERN}")
    return alias


_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def normalize_sha256(value: str, field_name: str) -> str | None:
    """Lowercase hex sha256, or None when empty; InvalidArgument when it is not one."""
    if not value:
        return None
    if not _SHA256_HEX.fullmatch(value.lower()):
        raise InvalidArgument(field_name, "must be a sha256 digest in hex (64 characters)")
    return value.lower()


def utcnow() -> datetime:
    return datetime.now(UTC)


class VersionStatus(StrEnum):
    PENDING = "PENDING"
    READY = "READY"
    FAILED = "FAILED"


class EventType(StrEnum):
    MODEL_CREATED = "MODEL_CREATED"
    MODEL_DELETED = "MODEL_DELETED"
    VERSION_CREATED = "VERSION_CREATED"
    VERSION_STATUS_CHANGED = "VERSION_STATUS_CHANGED"
    VERSION_DELETED = "VERSION_DELETED"
    ALIAS_SET = "ALIAS_SET"
    ALIAS_DELETED = "ALIAS_DELETED"


@dataclass
class Model:
    name: str
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    create_time: datetime | None = None
    update_time: datetime | None = None
    latest_version: int = 0
    aliases: dict[str, int] = field(default_factory=dict)
    created_by: str = ""


@dataclass
class VersionSpec:
    """What a client says about a new version (everything but the artifact bytes)."""

    model_name: str
    sha256: str = ""
    size_bytes: int = 0
    existing_artifact_uri: str = ""
    create_model_if_missing: bool = False
    flavor: str = "UNSPECIFIED"
    signature: dict = field(default_factory=dict)
    metrics: list[dict] = field(default_factory=list)
    params: dict = field(default_factory=dict)
    lineage: dict = field(default_factory=dict)
    feature_importances: list[dict] = field(default_factory=list)
    requirements: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""
    request_id: str = ""


@dataclass
class ModelVersion:
    model_name: str
    version: int
    status: VersionStatus
    status_message: str = ""
    artifact_uri: str = ""
    sha256: str = ""
    size_bytes: int = 0
    flavor: str = "UNSPECIFIED"
    signature: dict = field(default_factory=dict)
    metrics: list[dict] = field(default_factory=list)
    params: dict = field(default_factory=dict)
    lineage: dict = field(default_factory=dict)
    feature_importances: list[dict] = field(default_factory=list)
    requirements: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""
    aliases: list[str] = field(default_factory=list)
    create_time: datetime | None = None
    update_time: datetime | None = None
    created_by: str = ""


@dataclass
class AliasChange:
    model_name: str
    alias: str
    previous_version: int  # 0: the alias was new
    version: int  # 0: the alias was deleted
    changed_by: str = ""
    change_time: datetime | None = None
    reason: str = ""


@dataclass
class Event:
    sequence: int
    type: EventType
    event_time: datetime
    model_name: str
    version: int = 0
    model_version: ModelVersion | None = None
    alias_change: AliasChange | None = None
    model: Model | None = None


@dataclass(frozen=True)
class Selector:
    """Which version of a model: exactly one of alias, version or latest."""

    alias: str = ""
    version: int = 0
    latest: bool = False

    def describe(self) -> str:
        if self.latest:
            return "latest"
        return f"alias {self.alias!r}" if self.alias else f"version {self.version}"


def lineage_keys(lineage: dict) -> tuple[str, int, str]:
    """(dataset id, dataset version, search id) of a lineage dict, for the indexed columns."""
    dataset = lineage.get("dataset") or {}
    return (
        str(dataset.get("dataset_id") or ""),
        int(dataset.get("version") or 0),
        str(lineage.get("search_id") or ""),
    )


# -- records: how event details are kept in the events table (JSON) ---------------------------------


def to_record(obj) -> dict:
    """A JSON-able dict of a Model, ModelVersion or AliasChange."""
    data = asdict(obj)
    for key, value in data.items():
        if isinstance(value, datetime):
            data[key] = value.isoformat()
        elif isinstance(value, Enum):
            data[key] = value.value
    return data


def from_record(cls, data: dict):
    values = dict(data)
    for key in ("create_time", "update_time", "change_time"):
        if values.get(key):
            values[key] = datetime.fromisoformat(values[key])
    if cls is ModelVersion:
        values["status"] = VersionStatus(values["status"])
    return cls(**values)
