"""QueryMetrics over stored points: series selection by matchers, then per-step aggregation.

Where the data comes from: the coarsest aggregate kept at ingest (per hour, per 5 minutes, per
minute) whose resolution divides the step and the range's start: those also survive the raw
points' retention, and a step equal to the resolution reads its rows as stored. Anything else,
and every QUANTILE, reads the raw points. SUM/AVG/MIN/MAX/COUNT are computed by the database;
RATE and QUANTILE here.
"""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np

from loopml.runtime.errors import InvalidArgument, NotFound
from loopml.services.metrics.core.model import Aggregation, Matcher, MatchOp, Query, Series
from loopml.services.metrics.core.validation import check_label_name, check_metric_name, check_range
from loopml.services.metrics.repository import Repository

MAX_STEPS = 11_000  # samples per series


def validate_query(q: Query) -> None:
    check_metric_name(q.name, "name")
    check_range(q.start, q.end)
    if q.step <= 0:
        raise InvalidArgument("step", "step is required and must be > 0")
    if (q.end - q.start) / q.step > MAX_STEPS:
        raise InvalidArgument("step", f"the range holds more than {MAX_STEPS} steps; use a larger step")
    if q.aggregation is Aggregation.QUANTILE and not 0.0 <= q.quantile <= 1.0:
        raise InvalidArgument("quantile", "quantile must be in [0, 1]")
    for i, m in enumerate(q.matchers):
        check_label_name(m.label, f"matchers[{i}].label")
        if m.op in (MatchOp.REGEX, MatchOp.NOT_REGEX):
            try:
                re.compile(m.value)
            except re.error as exc:
                raise InvalidArgument(f"matchers[{i}].value", f"bad regular expression: {exc}") from None
    for i, label in enumerate(q.group_by):
        check_label_name(label, f"group_by[{i}]")


def matches(labels: dict[str, str], matchers: tuple[Matcher, ...]) -> bool:
    for m in matchers:
        value = labels.get(m.label, "")
        if m.op is MatchOp.EQUAL and value != m.value:
            return False
        if m.op is MatchOp.NOT_EQUAL and value == m.value:
            return False
        if m.op is MatchOp.REGEX and not re.fullmatch(m.value, value):
            return False
        if m.op is MatchOp.NOT_REGEX and re.fullmatch(m.value, value):
            return False
    return True


def query_points(repo: Repository, q: Query) -> list[Series]:
    """Every series of the (recorded) metric `q.name` matching the query, aggregated per step."""
    with repo.reading():  # the series and their values in one session
        return _query_points(repo, q)


def _query_points(repo: Repository, q: Query) -> list[Series]:
    every = repo.series_of(q.name)
    if not every:
        raise NotFound("metric", q.name)
    selected = [(sid, labels) for sid, labels in every if matches(labels, q.matchers)]
    if not selected:
        return []
    groups: dict[tuple, list[int]] = defaultdict(list)
    group_labels: dict[tuple, dict[str, str]] = {}
    for sid, labels in selected:
        key_labels = {k: labels.get(k, "") for k in q.group_by} if q.group_by else labels
        key = tuple(sorted(key_labels.items()))
        groups[key].append(sid)
        group_labels[key] = key_labels
    group_of = {sid: key for key, sids in groups.items() for sid in sids}
    ids = [sid for sid, _ in selected]

    resolution = _rollup_resolution(q)
    if q.aggregation is Aggregation.QUANTILE or (resolution is None and q.aggregation is Aggregation.RATE):
        per_group = _from_raw_values(repo, q, ids, group_of)
    elif resolution is None:
        per_group = _from_raw_sql(repo, q, ids, group_of)
    else:
        per_group = _from_rollups(repo, q, ids, group_of, resolution)

    out = []
    for key in sorted(per_group):
        samples = sorted(per_group[key].items())
        if samples:
            out.append(Series(q.name, group_labels[key], [(q.start + b * q.step, v) for b, v in samples]))
    return out


def _rollup_resolution(q: Query) -> int | None:
    for res in (3600, 300, 60):
        if q.step % res == 0 and q.start % res == 0:
            return res
    return None


def _from_raw_sql(repo, q: Query, ids, group_of) -> dict[tuple, dict[int, float]]:
    fn = q.aggregation.value
    # Group-wise AVG needs sums and counts; the others combine directly.
    if fn == "avg" and len(set(group_of.values())) < len(ids):
        sums = repo.aggregate_raw(ids, q.start, q.end, q.step, "sum")
        counts = {(s, b): v for s, b, v in repo.aggregate_raw(ids, q.start, q.end, q.step, "count")}
        acc: dict[tuple, dict[int, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0.0]))
        for sid, b, v in sums:
            a = acc[group_of[sid]][b]
            a[0] += v
            a[1] += counts[(sid, b)]
        return {g: {b: s / n for b, (s, n) in steps.items()} for g, steps in acc.items()}
    out: dict[tuple, dict[int, float]] = defaultdict(dict)
    for sid, b, v in repo.aggregate_raw(ids, q.start, q.end, q.step, fn):
        steps = out[group_of[sid]]
        steps[b] = _combine(fn, steps.get(b), v)
    return out


def _combine(fn: str, old: float | None, new: float) -> float:
    if old is None:
        return new
    if fn in ("sum", "count", "avg"):  # avg only reaches here with one series per group
        return old + new
    return min(old, new) if fn == "min" else max(old, new)


def _from_rollups(repo, q: Query, ids, group_of, resolution) -> dict[tuple, dict[int, float]]:
    fn = q.aggregation.value
    rows = repo.aggregate_rollups(ids, resolution, q.start, q.end, q.step, with_last=fn == "rate")
    if fn == "rate":
        return _rate_from_lasts(q, rows, group_of)
    if not rows:
        return {}
    # Vectorised over the (series, step) rows: combine them per (group, step), then pick.
    table = np.asarray([r[:6] for r in rows], dtype=float)
    groups = sorted(set(group_of.values()))
    index = {g: i for i, g in enumerate(groups)}
    series_ids, where = np.unique(table[:, 0].astype(np.int64), return_inverse=True)
    group = np.asarray([index[group_of[int(sid)]] for sid in series_ids])[where]
    steps = table[:, 1].astype(np.int64)
    width = int(steps.max()) + 1
    keys, at = np.unique(group * width + steps, return_inverse=True)
    if fn in ("min", "max"):
        value = np.full(len(keys), np.inf if fn == "min" else -np.inf)
        (np.minimum if fn == "min" else np.maximum).at(value, at, table[:, 4 if fn == "min" else 5])
    else:
        count = np.bincount(at, weights=table[:, 2])
        total = np.bincount(at, weights=table[:, 3])
        value = {"sum": total, "count": count, "avg": total / count}[fn]  # every row counts >= 1
    key_group, key_step = np.divmod(keys, width)
    out: dict[tuple, dict[int, float]] = {}
    for i, g in enumerate(groups):
        mine = key_group == i
        out[g] = dict(zip(key_step[mine].tolist(), value[mine].tolist(), strict=True))
    return out


def _rate_from_lasts(q: Query, rows, group_of) -> dict[tuple, dict[int, float]]:
    """Per-second increase of a counter between the last values of consecutive steps (a counter
    reset, i.e. a drop, counts the new value as the increase). Summed over the group."""
    lasts: dict[int, dict[int, float]] = defaultdict(dict)
    for sid, b, *_rest, last, _ts in rows:
        lasts[sid][b] = last
    out: dict[tuple, dict[int, float]] = defaultdict(dict)
    for sid, steps in lasts.items():
        prev = None
        for b in sorted(steps):
            if prev is not None:
                increase = steps[b] - prev if steps[b] >= prev else steps[b]
                group = out[group_of[sid]]
                group[b] = group.get(b, 0.0) + increase / q.step
            prev = steps[b]
    return out


def _from_raw_values(repo, q: Query, ids, group_of) -> dict[tuple, dict[int, float]]:
    values: dict[tuple, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    by_series: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for sid, ts, v in repo.raw_values(ids, q.start, q.end):
        b = int((ts - q.start) // q.step)
        values[group_of[sid]][b].append(v)
        by_series[sid].append((ts, v))
    if q.aggregation is Aggregation.QUANTILE:
        return {
            g: {b: float(np.quantile(np.asarray(vs), q.quantile)) for b, vs in steps.items()}
            for g, steps in values.items()
        }
    # RATE from raw points: increase within each step (resets handled), per second.
    out: dict[tuple, dict[int, float]] = defaultdict(dict)
    for sid, pts in by_series.items():
        prev = None
        for ts, v in pts:
            b = int((ts - q.start) // q.step)
            if prev is not None:
                increase = v - prev if v >= prev else v
                group = out[group_of[sid]]
                group[b] = group.get(b, 0.0) + increase / q.step
            prev = v
    return out
