"""Checks on names and labels shared by the ingest and query paths."""

from __future__ import annotations

import math
import re

from loopml.runtime.errors import InvalidArgument

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
MAX_NAME = 200


def check_metric_name(name: str, field: str) -> None:
    if not name:
        raise InvalidArgument(field, "a metric name is required")
    if len(name) > MAX_NAME or not METRIC_NAME.fullmatch(name):
        raise InvalidArgument(
            field, f"metric name {name!r} must match [a-zA-Z_:][a-zA-Z0-9_:]* (at most {MAX_NAME} characters)"
        )


def check_label_name(label: str, field: str) -> None:
    if len(label) > MAX_NAME or not LABEL_NAME.fullmatch(label):
        raise InvalidArgument(field, f"label name {label!r} must match [a-zA-Z_][a-zA-Z0-9_]*")


def check_finite(value: float, field: str) -> None:
    if not math.isfinite(value):
        raise InvalidArgument(field, f"value must be finite, got {value}")


def check_range(start: float, end: float, field: str = "end_time") -> None:
    if end <= start:
        raise InvalidArgument(field, "the time range must end after it starts")
