"""Checks a request's columns against a model's input signature and builds the model's DataFrame.

Every refusal is an InvalidArgument naming the column (`inputs.<name>`) and, for cell problems,
the first offending row. Accepted cell kinds per logical type:

    numeric, integer  double, int64          (missing -> NaN)
    boolean           bool, int64 of 0/1     (missing -> None)
    categorical       string, int64, bool    (missing -> None)
    text, identifier  string                 (missing -> None)
    datetime          timestamp, string      (missing -> NaT)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from loopml.modelkit import ColumnSpec
from loopml.runtime.errors import InvalidArgument

#: Which request cell kinds each logical input type accepts.
ACCEPTED_KINDS = {
    "numeric": {"double", "int64"},
    "integer": {"double", "int64"},
    "boolean": {"bool", "int64"},
    "categorical": {"string", "int64", "bool"},
    "text": {"string"},
    "identifier": {"string"},
    "datetime": {"timestamp", "string"},
}
NUMERIC_TYPES = {"numeric", "integer", "boolean"}


@dataclass
class InputColumn:
    """One request column: `kind` is double, int64, bool, string, timestamp, mixed or null (all missing).

    `values` has one entry per row (a placeholder where `nulls` is True); `mixed` holds Python
    objects with None for missing cells.
    """

    kind: str
    values: np.ndarray | list
    nulls: np.ndarray | None = None


@dataclass
class InputBatch:
    """The rows of one request: named columns, or (fast path) one numeric matrix in signature order."""

    columns: dict[str, InputColumn] | None = None
    row_count: int = 0
    matrix: np.ndarray | None = None

    @property
    def rows(self) -> int:
        return len(self.matrix) if self.matrix is not None else self.row_count


def _field(name: str) -> str:
    return f"inputs.{name}"


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def build_frame(specs: Sequence[ColumnSpec], batch: InputBatch, *, keep_matrix: bool = False):
    """The validated model input for `batch`, or InvalidArgument naming the first bad column.

    A DataFrame in signature order; with `keep_matrix`, a matrix request stays a matrix."""
    if batch.matrix is not None:
        return _frame_from_matrix(specs, batch.matrix, keep_matrix)
    columns = batch.columns or {}
    names = [s.name for s in specs]
    wanted = set(names)
    for name in columns:
        if name not in wanted:
            raise InvalidArgument(_field(name), f"unknown input column; the model takes {names}")
    for name in names:
        if name not in columns:
            raise InvalidArgument(_field(name), f"missing input column; the model takes {names}")
    data = {spec.name: _convert(spec, columns[spec.name], batch.row_count) for spec in specs}
    return pd.DataFrame(data, columns=names)


#: Per input signature (by identity; the cache keeps the list alive so its id stays its own): what
#: `_matrix_plan` found, built on first use instead of walking every column spec per request.
_MATRIX_PLANS: dict[int, tuple[Sequence[ColumnSpec], list[int] | tuple[str, str]]] = {}


def _matrix_plan(specs: Sequence[ColumnSpec]) -> list[int] | tuple[str, str]:
    """The indices of the columns that refuse NaN, or (field, reason) when a column is not numeric."""
    cached = _MATRIX_PLANS.get(id(specs))
    if cached is not None and cached[0] is specs:
        return cached[1]
    plan: list[int] | tuple[str, str] = []
    for index, spec in enumerate(specs):
        if spec.type not in NUMERIC_TYPES:
            plan = (_field(spec.name), f"a {spec.type} column cannot come in a numeric matrix")
            break
        if not spec.nullable:
            plan.append(index)
    if len(_MATRIX_PLANS) >= 256:  # models come and go: keep the table small
        _MATRIX_PLANS.clear()
    _MATRIX_PLANS[id(specs)] = (specs, plan)
    return plan


def _frame_from_matrix(specs: Sequence[ColumnSpec], matrix: np.ndarray, keep_matrix: bool):
    if matrix.ndim != 2 or matrix.shape[1] != len(specs):
        names = [s.name for s in specs]
        raise InvalidArgument(
            "inputs.features",
            f"expected shape [rows, {len(specs)}] (columns {names}), got {list(matrix.shape)}",
        )
    required = _matrix_plan(specs)
    if isinstance(required, tuple):
        raise InvalidArgument(*required)
    if required and matrix.size:
        if len(required) == len(specs):
            # Every column refuses NaN: one reduction (min propagates NaN) before any search.
            suspect = np.isnan(matrix.min())
            checked = matrix
        else:
            checked = matrix[:, required]
            suspect = True
        if suspect:
            nan = np.isnan(checked)
            if nan.any():
                row, column = np.argwhere(nan)[0]
                raise InvalidArgument(
                    _field(specs[required[column]].name), f"row {row}: NaN or missing value not allowed"
                )
    return matrix if keep_matrix else pd.DataFrame(matrix, columns=[s.name for s in specs], copy=False)


def _convert(spec: ColumnSpec, column: InputColumn, row_count: int):
    field = _field(spec.name)
    if len(column.values) != row_count:
        raise InvalidArgument(field, f"has {len(column.values)} cells, expected {row_count} rows")
    if column.kind == "mixed":
        return _convert_mixed(spec, list(column.values))
    nulls = column.nulls if column.nulls is not None else np.zeros(row_count, dtype=bool)
    if column.kind == "null":
        nulls = np.ones(row_count, dtype=bool)
    elif column.kind not in ACCEPTED_KINDS.get(spec.type, set()):
        raise InvalidArgument(
            field,
            f"{column.kind} values given; a {spec.type} column takes {sorted(ACCEPTED_KINDS[spec.type])}",
        )
    if not spec.nullable and nulls.any():
        raise InvalidArgument(field, f"row {_first(nulls)}: missing value not allowed")
    if spec.type in ("numeric", "integer"):
        values = (
            np.zeros(row_count) if column.kind == "null" else np.asarray(column.values, dtype=float).copy()
        )
        if not spec.nullable:
            nan = np.isnan(values)
            if nan.any():
                raise InvalidArgument(field, f"row {_first(nan)}: NaN not allowed")
        values[nulls] = np.nan
        return values
    if spec.type == "boolean" and column.kind == "int64":
        ints = np.asarray(column.values)
        bad = ~np.isin(ints, (0, 1)) & ~nulls
        if bad.any():
            raise InvalidArgument(
                field, f"row {_first(bad)}: boolean column takes 0 or 1, got {ints[_first(bad)]}"
            )
    if spec.type == "datetime":
        values = pd.to_datetime(pd.Series(list(column.values)), errors="coerce", utc=True)
        bad = values.isna().to_numpy() & ~nulls
        if bad.any():
            raise InvalidArgument(
                field, f"row {_first(bad)}: not a date-time: {column.values[_first(bad)]!r}"
            )
        values[nulls] = pd.NaT
        return values.to_numpy()
    cells = np.empty(row_count, dtype=object)
    if column.kind != "null":
        cells[:] = list(column.values)
    if spec.type == "boolean":
        cells = np.array([bool(v) for v in cells], dtype=object) if column.kind != "null" else cells
    cells[nulls] = None
    return cells


def _kind_of(cell) -> str:
    if isinstance(cell, (bool, np.bool_)):
        return "bool"
    if isinstance(cell, (int, np.integer)):
        return "int64"
    if isinstance(cell, (float, np.floating)):
        return "double"
    if isinstance(cell, str):
        return "string"
    if isinstance(cell, (pd.Timestamp, np.datetime64)):
        return "timestamp"
    return type(cell).__name__


def _convert_mixed(spec: ColumnSpec, cells: list):
    """Cells typed one by one (ValueArray): each must be of a kind the column accepts."""
    field = _field(spec.name)
    accepted = ACCEPTED_KINDS.get(spec.type, set())
    for row, cell in enumerate(cells):
        if cell is None:
            if not spec.nullable:
                raise InvalidArgument(field, f"row {row}: missing value not allowed")
            continue
        kind = _kind_of(cell)
        if kind not in accepted:
            raise InvalidArgument(
                field, f"row {row}: {kind} value; a {spec.type} column takes {sorted(accepted)}"
            )
        if kind == "double" and np.isnan(cell) and not spec.nullable:
            raise InvalidArgument(field, f"row {row}: NaN not allowed")
    if spec.type in ("numeric", "integer"):
        return np.array([np.nan if c is None else float(c) for c in cells])
    if spec.type == "datetime":
        return pd.to_datetime(pd.Series(cells), utc=True).to_numpy()
    out = np.empty(len(cells), dtype=object)
    out[:] = [None if c is None else (bool(c) if spec.type == "boolean" else c) for c in cells]
    return out


def smoke_frame(specs: Sequence[ColumnSpec]) -> pd.DataFrame:
    """A one-row input every well-formed model must answer (used before a version goes live)."""
    row = {}
    for spec in specs:
        if spec.type in ("numeric", "integer"):
            row[spec.name] = np.array([0.0])
        elif spec.type == "boolean":
            row[spec.name] = np.array([False], dtype=object)
        elif spec.type == "datetime":
            row[spec.name] = pd.to_datetime(pd.Series(["2000-01-01"]), utc=True).to_numpy()
        else:
            row[spec.name] = np.array(["" if spec.type != "categorical" else "a"], dtype=object)
    return pd.DataFrame(row, columns=[s.name for s in specs])


def batch_from_lists(columns: dict[str, list]) -> InputBatch:
    """An InputBatch from plain Python lists (None = missing), each column typed by its cells."""
    row_counts = {len(v) for v in columns.values()}
    if len(row_counts) > 1:
        raise InvalidArgument("inputs", f"columns of unequal length: {sorted(row_counts)}")
    return InputBatch(
        {name: InputColumn("mixed", list(values)) for name, values in columns.items()},
        row_counts.pop() if row_counts else 0,
    )
