"""Field paths over logged prediction rows and their feedback, and the filters on them.

Paths: input.<column>, prediction, probability.<class>, actual, business.<key>, label.<key>,
model_version. A path is checked against what is known of the model (its input columns and
classes) when a custom metric or alert rule is created, never first at evaluation.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from loopml.runtime.errors import InvalidArgument

KEY = re.compile(r"[A-Za-z0-9_.:\-]+")
PLAIN_FIELDS = ("prediction", "actual", "model_version")
PREFIXES = ("input.", "probability.", "business.", "label.")


class Op(enum.Enum):
    EQ = "=="
    NE = "!="
    GT = ">"
    GE = ">="
    LT = "<"
    LE = "<="
    IN = "in"
    NOT_IN = "not in"


@dataclass(frozen=True)
class FieldFilter:
    field: str
    op: Op
    value: Any = None
    values: tuple[Any, ...] = ()


@dataclass(frozen=True)
class KnownFields:
    """What exists for a model: its input columns and classes ("" model: only model-free paths)."""

    model_name: str
    inputs: frozenset[str] = frozenset()
    classes: frozenset[str] = frozenset()


def check_path(path: str, known: KnownFields, field: str) -> None:
    if path in PLAIN_FIELDS:
        return
    prefix = next((p for p in PREFIXES if path.startswith(p)), None)
    if prefix is None:
        raise InvalidArgument(
            field,
            f"unknown field {path!r}; use input.<column>, prediction, "
            "probability.<class>, actual, business.<key>, label.<key> or model_version",
        )
    key = path[len(prefix) :]
    if not key or not KEY.fullmatch(key):
        raise InvalidArgument(field, f"field {path!r} needs a key after {prefix!r}")
    if prefix == "input.":
        if not known.model_name:
            raise InvalidArgument(field, f"{path!r} needs a model: set model_name")
        if key not in known.inputs:
            raise InvalidArgument(
                field,
                f"model {known.model_name!r} has no input column {key!r} "
                f"(inputs: {', '.join(sorted(known.inputs)) or 'none known'})",
            )
    if prefix == "probability.":
        if not known.model_name:
            raise InvalidArgument(field, f"{path!r} needs a model: set model_name")
        if key not in known.classes:
            raise InvalidArgument(field, f"model {known.model_name!r} has no class {key!r}")


def check_filters(
    filters: tuple[FieldFilter, ...], known: KnownFields, field: str, allow_sets: bool = True
) -> None:
    for i, f in enumerate(filters):
        check_path(f.field, known, f"{field}[{i}].field")
        if f.op in (Op.IN, Op.NOT_IN):
            if not allow_sets:
                raise InvalidArgument(f"{field}[{i}].operator", "IN / NOT_IN are not allowed here")
            if not f.values:
                raise InvalidArgument(f"{field}[{i}].values", "IN / NOT_IN need values")


def rows_of(record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One flat dict per predicted row of a stored record (with its feedback, if any)."""
    inputs = record.get("inputs", {})
    preds = record.get("predictions", [])
    classes = [str(c) for c in record.get("classes", [])]
    probs = record.get("probabilities", [])
    labels = record.get("labels", {})
    feedback = record.get("feedback", {})
    for i in range(record["row_count"]):
        row: dict[str, Any] = {
            "prediction": preds[i] if i < len(preds) else None,
            "model_version": record["model_version"],
        }
        for col, cells in inputs.items():
            row["input." + col] = cells[i] if i < len(cells) else None
        if classes and probs:
            base = i * len(classes)
            for k, c in enumerate(classes):
                row["probability." + c] = probs[base + k] if base + k < len(probs) else None
        for k, v in labels.items():
            row["label." + k] = v
        fb = feedback.get(i) if feedback else None
        if fb is not None:
            row["actual"] = fb[0]
            for k, v in fb[1].items():
                row["business." + k] = v
        yield row


def matches(row: dict[str, Any], filters: tuple[FieldFilter, ...]) -> bool:
    return all(_test(row.get(f.field), f) for f in filters)


def _test(cell: Any, f: FieldFilter) -> bool:
    if f.op is Op.IN:
        return any(_eq(cell, v) for v in f.values)
    if f.op is Op.NOT_IN:
        return cell is not None and not any(_eq(cell, v) for v in f.values)
    if cell is None:
        return False
    if f.op is Op.EQ:
        return _eq(cell, f.value)
    if f.op is Op.NE:
        return not _eq(cell, f.value)
    a, b = _comparable(cell, f.value)
    if a is None:
        return False
    return {Op.GT: a > b, Op.GE: a >= b, Op.LT: a < b, Op.LE: a <= b}[f.op]


def _number(x: Any) -> float | None:
    if isinstance(x, bool):
        return float(x)
    if isinstance(x, (int, float)):
        return float(x)
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def _eq(cell: Any, value: Any) -> bool:
    if cell is None or value is None:
        return cell is None and value is None
    if not isinstance(cell, str) and not isinstance(value, str):
        return _number(cell) == _number(value)  # 1 == 1.0 == True
    if isinstance(cell, bool) or isinstance(value, bool):
        return str(cell).lower() == str(value).lower()  # "true" == True
    return str(cell) == str(value)


def _comparable(cell: Any, value: Any):
    a, b = _number(cell), _number(value)
    if a is not None and b is not None:
        return a, b
    return (str(cell), str(value)) if cell is not None else (None, None)
