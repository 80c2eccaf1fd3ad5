"""Drift of live prediction inputs (and predictions) against a training reference.

The reference is a summary, not rows: per numeric feature its quantiles (and histogram, when the
profile has one), per categorical feature its most frequent values and their counts, plus the
categories the model saw at training. Numeric PSI bins are cut at the training quantiles (so each
reference bin holds a known share); categorical PSI has one bin per reference category, one for
the other known categories, and an "(unseen)" bin. KS compares the live empirical CDF with the
reference CDF interpolated through the quantiles / histogram edges.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from loopml.runtime.errors import InvalidArgument
from loopml.services.metrics.core import stats

NUMERIC, CATEGORICAL = "numeric", "categorical"
UNSEEN, OTHER = "(unseen)", "(other known)"


@dataclass(frozen=True)
class FeatureReference:
    name: str
    kind: str  # NUMERIC or CATEGORICAL
    type_name: str = ""  # the column type as the profile says ("numeric", "integer", ...)
    count: int = 0  # non-missing reference cells
    missing: int = 0
    quantiles: tuple[tuple[float, float], ...] = ()  # (probability, value), ascending
    histogram_edges: tuple[float, ...] = ()
    histogram_counts: tuple[int, ...] = ()
    top_values: tuple[tuple[str, int], ...] = ()  # categorical: value -> count
    known_categories: tuple[str, ...] = ()  # every category seen at training (may be wider)


@dataclass(frozen=True)
class Reference:
    row_count: int
    features: dict[str, FeatureReference]
    prediction: FeatureReference | None = None  # the label column's distribution at training
    dataset_id: str = ""
    dataset_version: int = 0
    split_id: str = ""


class ReferenceSource(Protocol):
    """Finds the training reference of a model version (the dataset profile of its train split)."""

    def reference_for(
        self,
        model_name: str,
        version: int,
        dataset_id: str = "",
        dataset_version: int = 0,
        split_id: str = "",
    ) -> Reference:
        """Raise NotFound (unknown model/version/dataset) or FailedPrecondition (no lineage)."""
        ...


@dataclass(frozen=True)
class Thresholds:
    psi_warning: float = 0.1
    psi_drift: float = 0.25
    ks_drift: float = 0.2
    min_live_rows: int = 100

    def validated(self) -> Thresholds:
        if min(self.psi_warning, self.psi_drift, self.ks_drift) < 0 or self.min_live_rows < 0:
            raise InvalidArgument("thresholds", "thresholds must not be negative")
        if self.psi_drift < self.psi_warning:
            raise InvalidArgument("thresholds.psi_drift", "psi_drift must be >= psi_warning")
        return self


SEVERITY_ORDER = ["unspecified", "none", "warning", "drift"]


@dataclass
class Bin:
    label: str
    reference: float
    live: float
    lower: float | None = None
    upper: float | None = None
    unseen: bool = False


@dataclass
class FeatureDrift:
    feature: str
    type_name: str
    psi: float
    ks: float | None
    ks_p_value: float | None
    severity: str
    reference_missing: float
    live_missing: float
    bins: list[Bin] = field(default_factory=list)
    rank: int = 0


@dataclass
class DriftReport:
    model_name: str
    model_version: int
    reference: Reference
    start: float
    end: float
    live_row_count: int
    features: list[FeatureDrift]
    prediction: FeatureDrift | None
    severity: str
    thresholds: Thresholds
    create_time: float


def drift_report(
    model_name: str,
    version: int,
    reference: Reference,
    live_columns: dict[str, list[Any]],
    live_predictions: list[Any],
    live_rows: int,
    start: float,
    end: float,
    thresholds: Thresholds,
    features: list[str] | None = None,
) -> DriftReport:
    names = list(features) if features else list(reference.features)
    for i, name in enumerate(names):
        if name not in reference.features:
            raise InvalidArgument(
                f"features[{i}]", f"feature {name!r} is not an input of the model's reference"
            )
    results = [
        feature_drift(reference.features[n], live_columns.get(n, [None] * live_rows), thresholds)
        for n in names
    ]
    results.sort(key=lambda f: (-SEVERITY_ORDER.index(f.severity), -f.psi, f.feature))
    for rank, f in enumerate(results, 1):
        f.rank = rank
    prediction = None
    if reference.prediction is not None and live_predictions:
        prediction = feature_drift(reference.prediction, live_predictions, thresholds, name="prediction")
    everything = results + ([prediction] if prediction else [])
    worst = max((SEVERITY_ORDER.index(f.severity) for f in everything), default=0)
    return DriftReport(
        model_name,
        version,
        reference,
        start,
        end,
        live_rows,
        results,
        prediction,
        SEVERITY_ORDER[worst],
        thresholds,
        time.time(),
    )


def feature_drift(ref: FeatureReference, cells: list[Any], th: Thresholds, name: str = "") -> FeatureDrift:
    ref_total = ref.count + ref.missing
    ref_missing = ref.missing / ref_total if ref_total else 0.0
    ks = p = None
    if ref.kind == NUMERIC:
        values = _as_floats(cells)
        present = len(values)
        discrete = _discrete_support(ref)
        bins = _value_bins(discrete, values) if discrete else _numeric_bins(ref, values)
        if present:
            ks = _discrete_ks(discrete, values) if discrete else _ks(ref, values)
            p = stats.ks_p_value(ks, present) if ks is not None else None
    else:
        counts = Counter(cells)  # C speed; each distinct value is then read once
        counts.pop(None, None)
        present = sum(counts.values())
        bins = _categorical_bins(ref, counts)
    live_missing = 1 - present / len(cells) if cells else 0.0
    value = (
        stats.psi(np.array([b.reference for b in bins]), np.array([b.live for b in bins])) if present else 0.0
    )
    if present < th.min_live_rows:
        severity = "unspecified"
    elif value >= th.psi_drift or (ks is not None and ks >= th.ks_drift):
        severity = "drift"
    elif value >= th.psi_warning:
        severity = "warning"
    else:
        severity = "none"
    return FeatureDrift(
        name or ref.name, ref.type_name or ref.kind, value, ks, p, severity, ref_missing, live_missing, bins
    )


def _as_floats(cells: list[Any]) -> np.ndarray:
    """The numeric cells as floats, missing ones (None, NaN) and non-numbers dropped."""
    try:
        values = np.asarray(cells, dtype=float)  # None becomes NaN
    except (TypeError, ValueError):  # mixed cells: the slow way
        values = np.asarray([float(c) if _is_number(c) else math.nan for c in cells], dtype=float)
    return values[~np.isnan(values)]


def _is_number(c: Any) -> bool:
    return isinstance(c, (int, float)) and not isinstance(c, bool) or isinstance(c, bool)


def _cut_points(ref: FeatureReference) -> tuple[np.ndarray, np.ndarray]:
    """Interior cut points and the reference share of each bin between them (outer bins open)."""
    qs = sorted(ref.quantiles)
    probs = np.array([p for p, _ in qs])
    vals = np.array([v for _, v in qs])
    interior = [(p, v) for p, v in zip(probs, vals, strict=False) if 0.0 < p < 1.0]
    cuts, cum = [], [0.0]
    for p, v in interior:
        if cuts and v <= cuts[-1]:
            continue  # a repeated value (discrete data): one cut at its first quantile
        cuts.append(v)
        cum.append(p)
    cum.append(1.0)
    # Bin k is [cuts[k-1], cuts[k]); share is the probability mass below cut k minus below k-1.
    edges_prob = np.array(cum)
    shares = np.diff(np.concatenate([[0.0], edges_prob[1:-1], [1.0]]))
    return np.array(cuts), shares


def _numeric_bins(ref: FeatureReference, values: np.ndarray) -> list[Bin]:
    cuts, shares = _cut_points(ref)
    idx = np.searchsorted(cuts, values, side="right") if len(values) else np.array([], dtype=int)
    counts = np.bincount(idx, minlength=len(cuts) + 1)
    live = counts / len(values) if len(values) else np.zeros(len(cuts) + 1)
    out = []
    for k in range(len(cuts) + 1):
        lo = float(cuts[k - 1]) if k > 0 else None
        hi = float(cuts[k]) if k < len(cuts) else None
        label = f"[{'-inf' if lo is None else f'{lo:.4g}'}, {'inf' if hi is None else f'{hi:.4g}'})"
        out.append(Bin(label, float(shares[k]), float(live[k]), lo, hi))
    return out


def _discrete_support(ref: FeatureReference) -> list[tuple[float, float]] | None:
    """(value, share) when the reference's most frequent values cover it entirely (a numeric
    column with few distinct values, e.g. 0/1 flags or small counts). Quantile cut points cannot
    describe such a column (several quantiles fall on one value), so it is binned by value."""
    if not ref.top_values or not ref.count:
        return None
    try:
        support = sorted((float(v), c / ref.count) for v, c in ref.top_values)
    except ValueError:
        return None
    covered = sum(share for _, share in support)
    return support if covered >= 0.999 else None


def _value_bins(support: list[tuple[float, float]], values: np.ndarray) -> list[Bin]:
    known = np.array([v for v, _ in support])
    n = len(values) or 1
    bins = [Bin(f"{v:g}", share, float(np.sum(values == v)) / n, v, v) for v, share in support]
    unseen = float(np.sum(~np.isin(values, known))) / n
    bins.append(Bin(UNSEEN, 0.0, unseen, unseen=True))
    return bins


def _discrete_ks(support: list[tuple[float, float]], values: np.ndarray) -> float:
    """sup |F_live - F_ref| over the union of both supports (both CDFs are step functions)."""
    ref_x = np.array([v for v, _ in support])
    ref_cdf = np.cumsum([share for _, share in support])
    points = np.union1d(ref_x, values)
    ref_at = np.concatenate([[0.0], ref_cdf])[np.searchsorted(ref_x, points, side="right")]
    live_at = np.searchsorted(np.sort(values), points, side="right") / len(values)
    return float(np.max(np.abs(live_at - ref_at)))


def _reference_cdf(ref: FeatureReference) -> tuple[np.ndarray, np.ndarray]:
    if ref.histogram_edges and ref.histogram_counts and sum(ref.histogram_counts) > 0:
        counts = np.asarray(ref.histogram_counts, dtype=float)
        cdf = np.concatenate([[0.0], np.cumsum(counts) / counts.sum()])
        return np.asarray(ref.histogram_edges, dtype=float), cdf
    qs = sorted(ref.quantiles)
    return np.array([v for _, v in qs]), np.array([p for p, _ in qs])


def _ks(ref: FeatureReference, values: np.ndarray) -> float | None:
    x, cdf = _reference_cdf(ref)
    if len(x) < 2:
        return None
    return stats.ks_against_cdf(values, x, cdf)


def _categorical_bins(ref: FeatureReference, live_counts: Counter) -> list[Bin]:
    total_ref = ref.count or sum(c for _, c in ref.top_values) or 1
    top = {stats.label_key(v): c / total_ref for v, c in ref.top_values}
    known = {stats.label_key(v) for v in ref.known_categories} | set(top)
    other_share = max(0.0, 1.0 - sum(top.values()))
    counts: dict[str, int] = {}
    other = unseen = 0
    for raw, n in live_counts.items():
        v = stats.label_key(raw)
        if v in top:
            counts[v] = counts.get(v, 0) + n
        elif v in known or (other_share > 0 and not ref.known_categories):
            other += n  # without the full category list, a non-top value may have been seen
        else:
            unseen += n
    total = sum(live_counts.values()) or 1
    bins = [Bin(v, share, counts.get(v, 0) / total) for v, share in top.items()]
    if other_share > 0 or other:
        bins.append(Bin(OTHER, other_share, other / total))
    bins.append(Bin(UNSEEN, 0.0, unseen / total, unseen=True))
    return bins
