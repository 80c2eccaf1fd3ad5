"""Custom metrics: a declarative aggregation over logged prediction rows and their feedback.

Nothing a user writes is executed: a definition is an aggregation, a field path, filters and
group-by paths, all checked against the model's known fields at creation.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from loopml.runtime.errors import InvalidArgument
from loopml.services.metrics.core import fields as fp
from loopml.services.metrics.core.model import Series
from loopml.services.metrics.core.validation import check_metric_name


class CustomAggregation(enum.Enum):
    COUNT = "count"
    SUM = "sum"
    AVG = "avg"
    MIN = "min"
    MAX = "max"
    FRACTION = "fraction"


NEEDS_FIELD = {CustomAggregation.SUM, CustomAggregation.AVG, CustomAggregation.MIN, CustomAggregation.MAX}


@dataclass(frozen=True)
class CustomMetric:
    name: str
    aggregation: CustomAggregation
    model_name: str = ""
    description: str = ""
    field: str = ""
    filters: tuple[fp.FieldFilter, ...] = ()
    numerator_filters: tuple[fp.FieldFilter, ...] = ()
    window_s: float = 3600.0
    group_by: tuple[str, ...] = ()
    create_time: float = 0.0


def validate(metric: CustomMetric, known: fp.KnownFields) -> None:
    check_metric_name(metric.name, "custom_metric.name")
    if metric.aggregation is None:
        raise InvalidArgument("custom_metric.aggregation", "an aggregation is required")
    if metric.aggregation in NEEDS_FIELD:
        if not metric.field:
            raise InvalidArgument("custom_metric.field", f"{metric.aggregation.name} needs a field")
        fp.check_path(metric.field, known, "custom_metric.field")
    elif metric.field:
        fp.check_path(metric.field, known, "custom_metric.field")
    if metric.aggregation is CustomAggregation.FRACTION and not metric.numerator_filters:
        raise InvalidArgument("custom_metric.numerator_filters", "FRACTION needs numerator_filters")
    fp.check_filters(metric.filters, known, "custom_metric.filters")
    fp.check_filters(metric.numerator_filters, known, "custom_metric.numerator_filters")
    for i, path in enumerate(metric.group_by):
        fp.check_path(path, known, f"custom_metric.group_by[{i}]")
    if metric.window_s <= 0:
        raise InvalidArgument("custom_metric.window", "window must be > 0")


def evaluate(metric: CustomMetric, records: list[dict[str, Any]], start: float, step: float) -> list[Series]:
    """Series of `metric` over `records`: one sample per step that has matching rows."""
    acc: dict[tuple, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        b = int((record["ts"] - start) // step)
        for row in fp.rows_of(record):
            if not fp.matches(row, metric.filters):
                continue
            key = tuple(str(row.get(p)) for p in metric.group_by)
            acc[key][b].append(row)
    out = []
    for key in sorted(acc):
        samples = []
        for b in sorted(acc[key]):
            value = _aggregate(metric, acc[key][b])
            if value is not None:
                samples.append((start + b * step, value))
        if samples:
            out.append(Series(metric.name, dict(zip(metric.group_by, key, strict=False)), samples))
    return out


def _aggregate(metric: CustomMetric, rows: list[dict[str, Any]]) -> float | None:
    agg = metric.aggregation
    if agg is CustomAggregation.COUNT:
        return float(len(rows))
    if agg is CustomAggregation.FRACTION:
        return sum(fp.matches(r, metric.numerator_filters) for r in rows) / len(rows)
    values = [fp._number(r.get(metric.field)) for r in rows]
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {
        CustomAggregation.SUM: sum,
        CustomAggregation.MIN: min,
        CustomAggregation.MAX: max,
        CustomAggregation.AVG: lambda v: sum(v) / len(v),
    }[agg](values)


# -- storage form ------------------------------------------------------------------------------
def to_json(metric: CustomMetric) -> dict:
    return {
        "name": metric.name,
        "aggregation": metric.aggregation.value,
        "model_name": metric.model_name,
        "description": metric.description,
        "field": metric.field,
        "filters": [filter_to_json(f) for f in metric.filters],
        "numerator_filters": [filter_to_json(f) for f in metric.numerator_filters],
        "window_s": metric.window_s,
        "group_by": list(metric.group_by),
        "create_time": metric.create_time,
    }


def from_json(d: dict) -> CustomMetric:
    return CustomMetric(
        d["name"],
        CustomAggregation(d["aggregation"]),
        d["model_name"],
        d["description"],
        d["field"],
        tuple(filter_from_json(f) for f in d["filters"]),
        tuple(filter_from_json(f) for f in d["numerator_filters"]),
        d["window_s"],
        tuple(d["group_by"]),
        d["create_time"],
    )


def filter_to_json(f: fp.FieldFilter) -> dict:
    return {"field": f.field, "op": f.op.value, "value": f.value, "values": list(f.values)}


def filter_from_json(d: dict) -> fp.FieldFilter:
    return fp.FieldFilter(d["field"], fp.Op(d["op"]), d["value"], tuple(d["values"]))
