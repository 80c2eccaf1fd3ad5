"""Typed scalars as JSON-friendly pairs, so profiles and class labels can be stored as JSON."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np


def tag(value: Any) -> list | None:
    """A Python/NumPy/Arrow scalar as `[kind, value]` (kind: double, int, string, bool, timestamp)."""
    if value is None:
        return None
    if hasattr(value, "as_py"):
        value = value.as_py()
    if isinstance(value, (bool, np.bool_)):
        return ["bool", bool(value)]
    if isinstance(value, (int, np.integer)):
        return ["int", int(value)]
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return ["double", value if math.isfinite(value) else str(value)]
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return ["timestamp", value.timestamp()]
    if isinstance(value, dt.date):
        return [
            "timestamp",
            dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC).timestamp(),
        ]
    if isinstance(value, bytes):
        return ["string", value.decode("utf-8", "replace")]
    return ["string", str(value)]


def untag(pair: list | None) -> Any:
    """The Python value of a `[kind, value]` pair (timestamps as aware datetimes)."""
    if pair is None:
        return None
    kind, value = pair
    if kind == "double":
        return float(value)
    if kind == "timestamp":
        return dt.datetime.fromtimestamp(value, tz=dt.UTC)
    return value
