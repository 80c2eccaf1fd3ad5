"""Built-in metrics, computed from the logged prediction records (no points are stored for them):

  loopml_predicted_rows               rows predicted per request, labels model, version
  loopml_prediction_latency_seconds   serving time per request, labels model, version

Queried like recorded metrics: SUM of loopml_predicted_rows per step is the rows served in the
step, COUNT the requests, RATE the rows per second; QUANTILE of the latency its percentiles.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from loopml.services.metrics.core.model import Aggregation, Query, Series
from loopml.services.metrics.core.timeseries import matches

BUILTIN = {"loopml_predicted_rows": "row_count", "loopml_prediction_latency_seconds": "latency_s"}


def query_builtin(repo, q: Query) -> list[Series]:
    field = BUILTIN[q.name]
    by_group: dict[tuple, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    labels_of: dict[tuple, dict[str, str]] = {}
    for model, version, ts, value in repo.request_values(q.start, q.end, field):
        labels = {"model": model, "version": str(version)}
        if not matches(labels, q.matchers):
            continue
        shown = {k: labels.get(k, "") for k in q.group_by} if q.group_by else labels
        key = tuple(sorted(shown.items()))
        labels_of[key] = shown
        by_group[key][int((ts - q.start) // q.step)].append(float(value))
    out = []
    for key in sorted(by_group):
        samples = [
            (q.start + b * q.step, _aggregate(q, values)) for b, values in sorted(by_group[key].items())
        ]
        out.append(Series(q.name, labels_of[key], samples))
    return out


def _aggregate(q: Query, values: list[float]) -> float:
    a = q.aggregation
    if a is Aggregation.SUM:
        return float(sum(values))
    if a is Aggregation.COUNT:
        return float(len(values))
    if a is Aggregation.MIN:
        return float(min(values))
    if a is Aggregation.MAX:
        return float(max(values))
    if a is Aggregation.RATE:  # not a counter: the per-second total of the step
        return float(sum(values)) / q.step
    if a is Aggregation.QUANTILE:
        return float(np.quantile(np.asarray(values), q.quantile))
    return float(sum(values)) / len(values)
