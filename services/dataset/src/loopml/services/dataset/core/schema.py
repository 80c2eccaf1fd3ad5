"""Schema inference (logical type and default role per column), task inference and warnings."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.services.dataset.core.model import Column, ColumnRole, ColumnType, TaskInference, TaskType
from loopml.services.dataset.core.profile import RawProfile, kind_of

_TRUE_FALSE = {frozenset(p) for p in (("true", "false"), ("yes", "no"), ("y", "n"), ("t", "f"))}
#: Fewest rows before "one distinct value per row" means identifier-like.
_ID_MIN_ROWS = 20
#: A label column with at most this many distinct integers is taken as classes.
_MAX_INTEGER_CLASSES = 20
_TEXT_MEAN_LENGTH = 30
_HIGH_CARDINALITY = 0.5


def infer_columns(raw: RawProfile, schema: pa.Schema) -> list[Column]:
    columns = []
    for index, field in enumerate(schema):
        stats = raw.stats(field.name)
        col_type, reason = _infer_type(stats, field.type, _space_share(raw.sample, field.name))
        role = ColumnRole.FEATURE
        if col_type == ColumnType.IDENTIFIER:
            role = ColumnRole.ID
        elif stats.distinct[0] <= 1:
            role = ColumnRole.IGNORED
        columns.append(
            Column(
                name=field.name,
                index=index,
                inferred_type=col_type,
                inference_reason=reason,
                nullable=stats.missing > 0,
                physical_type=str(field.type),
                default_role=role,
            )
        )
    return columns


def _space_share(sample: pa.Table, name: str) -> float:
    """Share of sampled string values that contain a space (free text has words)."""
    column = sample.column(name)
    if kind_of(column.type) != "string" or len(column) == column.null_count:
        return 0.0
    values = column.combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    return pc.mean(pc.cast(pc.match_substring(values.drop_null(), " "), pa.int8())).as_py() or 0.0


def _infer_type(stats, arrow_type: pa.DataType, space_share: float = 0.0) -> tuple[ColumnType, str]:
    distinct, _ = stats.distinct
    count = stats.count
    kind = kind_of(arrow_type)
    unique_per_row = count >= _ID_MIN_ROWS and distinct >= 0.98 * count
    if kind == "bool":
        return ColumnType.BOOLEAN, "true/false values"
    if kind == "time":
        return ColumnType.DATETIME, f"{arrow_type} values"
    if kind == "number":
        if pa.types.is_integer(arrow_type):
            values = set(stats.counts or ())
            if distinct == 2 and values <= {0, 1}:
                return ColumnType.BOOLEAN, "only the integers 0 and 1"
            if unique_per_row:
                return ColumnType.IDENTIFIER, f"{distinct} distinct integers in {count} rows (one per row)"
            return ColumnType.INTEGER, f"{distinct} distinct integer values in {count} rows"
        return ColumnType.NUMERIC, f"{distinct} distinct real values in {count} rows"
    # strings
    if count == 0:
        return ColumnType.CATEGORICAL, "no values"
    if distinct == 2 and stats.counts is not None:
        lowered = frozenset(str(v).strip().lower() for v in stats.counts)
        if lowered in _TRUE_FALSE:
            return ColumnType.BOOLEAN, f"two values {sorted(stats.counts)}"
    mean_length = stats.length_sum / count
    if mean_length >= _TEXT_MEAN_LENGTH:
        return ColumnType.TEXT, f"strings of {mean_length:.0f} characters on average"
    if space_share >= 0.5 and distinct >= _HIGH_CARDINALITY * count and count >= _ID_MIN_ROWS:
        return (
            ColumnType.TEXT,
            f"{distinct} distinct strings in {count} rows, {space_share:.0%} with several words",
        )
    if unique_per_row:
        return ColumnType.IDENTIFIER, f"{distinct} distinct strings in {count} rows (one per row)"
    return ColumnType.CATEGORICAL, f"{distinct} distinct strings in {count} rows"


def infer_task(column: Column, profile_column: dict) -> TaskInference:
    """Binary, multiclass or regression from the label column's type and distinct values."""
    distinct = profile_column["distinct"]
    classes = [pair[0] for pair in profile_column.get("top", [])] if distinct <= 200 else []
    classes = sorted(classes, key=lambda p: (p[0], p[1]))
    name = column.name
    if column.type == ColumnType.BOOLEAN or distinct == 2:
        return TaskInference(name, TaskType.BINARY, f"{distinct} distinct values → binary", classes)
    if column.type in (ColumnType.NUMERIC,):
        return TaskInference(name, TaskType.REGRESSION, f"real values ({distinct} distinct) → regression")
    if column.type == ColumnType.INTEGER:
        if distinct <= _MAX_INTEGER_CLASSES:
            return TaskInference(
                name, TaskType.MULTICLASS, f"{distinct} distinct integer values → multiclass", classes
            )
        return TaskInference(name, TaskType.REGRESSION, f"{distinct} distinct integer values → regression")
    if distinct < 2:
        return TaskInference(
            name, TaskType.BINARY, f"only {distinct} distinct value: a label needs two classes"
        )
    return TaskInference(
        name, TaskType.MULTICLASS, f"{distinct} distinct {column.type.value} values → multiclass", classes
    )


def warnings_for(
    profile: dict, columns: list[Column], sample: pa.Table, task: TaskInference | None
) -> list[dict]:
    rows = profile["row_count"]
    out = []
    by_name = {c["name"]: c for c in profile["columns"]}
    for column in columns:
        p = by_name[column.name]
        if rows and p["missing"] >= 0.5 * rows:
            out.append(
                _warning(
                    "high_missing",
                    column.name,
                    f"column '{column.name}' is {p['missing'] / rows:.0%} missing",
                    p["missing"] / rows,
                )
            )
        if p["count"] and p["distinct"] == 1:
            out.append(
                _warning("constant_column", column.name, f"column '{column.name}' holds a single value", 1.0)
            )
        if column.type == ColumnType.IDENTIFIER:
            ratio = p["distinct"] / max(1, p["count"])
            out.append(
                _warning(
                    "identifier_like",
                    column.name,
                    f"column '{column.name}' has about one distinct value per row ({ratio:.2f})",
                    ratio,
                )
            )
        elif (
            column.type == ColumnType.CATEGORICAL
            and p["count"] >= 100
            and p["distinct"] > _HIGH_CARDINALITY * p["count"]
        ):
            ratio = p["distinct"] / p["count"]
            out.append(
                _warning(
                    "high_cardinality",
                    column.name,
                    f"categorical column '{column.name}' has {p['distinct']} distinct values",
                    ratio,
                )
            )
    if profile["duplicate_row_count"]:
        share = profile["duplicate_row_count"] / max(1, rows)
        out.append(
            _warning(
                "duplicate_rows",
                "",
                f"{profile['duplicate_row_count']} rows duplicate an earlier row ({share:.1%})",
                share,
            )
        )
    if task is not None:
        out += _label_warnings(task, by_name[task.label_column], columns, sample)
    return out


def _label_warnings(
    task: TaskInference, label_profile: dict, columns: list[Column], sample: pa.Table
) -> list[dict]:
    out = []
    label = task.label_column
    if task.task != TaskType.REGRESSION and label_profile["count"] and label_profile["top"]:
        minority = min(c for _, c in label_profile["top"]) / label_profile["count"]
        if minority < 0.1:
            out.append(
                _warning(
                    "class_imbalance",
                    label,
                    f"the rarest class of '{label}' is {minority:.1%} of the rows",
                    minority,
                )
            )
    if sample.num_rows < 10:
        return out
    y = sample.column(label)
    valid = pc.is_valid(y)
    for column in columns:
        if column.name == label or column.type in (ColumnType.IDENTIFIER, ColumnType.TEXT):
            continue
        score = _leak_score(sample.column(column.name).filter(valid), y.filter(valid), task.task)
        if score is not None and score >= 0.999:
            out.append(
                _warning(
                    "label_leak",
                    column.name,
                    f"column '{column.name}' predicts '{label}' with accuracy {score:.2f}",
                    score,
                )
            )
    return out


def _leak_score(x: pa.ChunkedArray, y: pa.ChunkedArray, task: TaskType) -> float | None:
    """Accuracy of the best lookup (x value -> majority label), or of the best single threshold on a
    numeric x for a binary label. None when the check does not apply."""
    n = len(y)
    if n == 0 or x.null_count == n:
        return None
    table = pa.table({"x": x, "y": y}).filter(pc.is_valid(x))
    if table.num_rows < 0.9 * n or table.num_rows < 10:
        return None
    x_distinct = pc.count_distinct(table.column("x")).as_py()
    if task == TaskType.REGRESSION:
        return None
    if x_distinct <= max(2, 0.05 * table.num_rows):
        pairs = table.group_by(["x", "y"]).aggregate([([], "count_all")])
        best = pairs.group_by("x").aggregate([("count_all", "max")])
        return pc.sum(best.column("count_all_max")).as_py() / table.num_rows
    if task == TaskType.BINARY and kind_of(table.schema.field("x").type) == "number":
        xs = table.column("x").to_numpy().astype("float64")
        ys = np.asarray(
            pc.equal(table.column("y"), table.column("y")[0]).to_numpy(zero_copy_only=False), dtype=bool
        )
        order = np.argsort(xs, kind="stable")
        ys = ys[order]
        positives_below = np.concatenate([[0], np.cumsum(ys)])
        k = np.arange(len(ys) + 1)
        total_pos = positives_below[-1]
        # class A below the threshold, B above; or the other way round
        acc_a = (positives_below + (len(ys) - k) - (total_pos - positives_below)) / len(ys)
        acc_b = ((k - positives_below) + (total_pos - positives_below)) / len(ys)
        return float(max(acc_a.max(), acc_b.max()))
    return None


def _warning(kind: str, column: str, message: str, value: float) -> dict:
    return {"kind": kind, "column": column, "message": message, "value": float(value)}


__all__ = ["infer_columns", "infer_task", "warnings_for"]


def finish_profile(
    profile: dict, columns: list[Column], sample: pa.Table
) -> tuple[dict, TaskInference | None]:
    """Add the columns' effective types and the warnings to a profile; return it with the task
    inferred from the label column, if there is one."""
    by_name = {c["name"]: c for c in profile["columns"]}
    for column in columns:
        by_name[column.name]["type"] = column.type.value
    label = next((c for c in columns if c.role == ColumnRole.LABEL), None)
    task = infer_task(label, by_name[label.name]) if label else None
    profile["warnings"] = warnings_for(profile, columns, sample, task)
    return profile, task
