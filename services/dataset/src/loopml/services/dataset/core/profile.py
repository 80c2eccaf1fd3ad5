"""Streaming profile of a table: fed one Arrow record batch at a time, memory bounded by settings.

Exact: counts, missing, min/max, mean/std (merged per batch), top values and distinct counts of
columns with at most `TRACKED_VALUES` distinct values. Approximate, for large inputs only:

* distinct counts above `TRACKED_VALUES`: a k-minimum-values sketch over 64-bit value hashes
  (k = 4096, relative error about 1/sqrt(k) = 1.6 %); top values of such columns count only the
  values that were most frequent when the limit was reached.
* quantiles, histograms (bin counts scaled to the column's count; the edges span the exact
  min/max) and the label-leak check: computed on a uniform random sample of `SAMPLE_ROWS` rows,
  which is every row when the table is smaller.
* duplicated rows: counted by 64-bit row hashes (8 bytes per row; a hash collision would count a
  false duplicate with probability about rows²/2⁶⁵).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from loopml.services.dataset.core.values import tag

TRACKED_VALUES = 10_000
SKETCH_K = 4096
SAMPLE_ROWS = 50_000
TOP_VALUES = 20
#: Values whose counts are kept after a column passes TRACKED_VALUES distinct values.
TOP_KEPT = 1000
HISTOGRAM_BINS = 20
QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
_SEED = 20261127


def kind_of(arrow_type: pa.DataType) -> str:
    """How a column is profiled: number, bool, time or string."""
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "number"
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
        return "time"
    return "string"


def _as_numbers(array: pa.Array, kind: str) -> np.ndarray:
    """Non-missing values as float64 (times as epoch seconds)."""
    array = array.drop_null()
    if kind == "time":
        if pa.types.is_date(array.type):
            array = array.cast(pa.timestamp("s"))
        array = array.cast(pa.timestamp("s")).cast(pa.int64())
    elif kind == "bool":
        array = array.cast(pa.int8())
    return array.to_numpy(zero_copy_only=False).astype("float64", copy=False)


class _ColumnStats:
    def __init__(self, name: str, arrow_type: pa.DataType):
        self.name, self.arrow_type, self.kind = name, arrow_type, kind_of(arrow_type)
        self.count = self.missing = 0
        self.mean = self.m2 = 0.0
        self.min = self.max = None
        self.length_sum = 0
        self.counts: dict | None = {}  # value -> count while at most TRACKED_VALUES values
        self.sketch = np.empty(0, dtype=np.uint64)  # k smallest hashes, once counts is None
        self.frozen_top: dict = {}
        self._frozen_set: pa.Array | None = None

    def add(self, array: pa.Array, hashes: np.ndarray) -> None:
        """A batch of a number, bool or time column, with its cell hashes."""
        missing = array.null_count
        present = self._count(len(array), missing)
        if present == 0:
            return
        lo, hi = pc.min_max(array).values()
        self._extremes(lo, hi)
        if self.kind in ("number", "bool"):
            self._merge_moments(_as_numbers(array, self.kind))
        values = array.drop_null() if missing else array
        if self.counts is not None:
            counted = pc.value_counts(values)
            self._track(counted.field("values"), counted.field("counts").to_numpy())
        else:  # keep counting the values that were frequent when tracking stopped
            counted = pc.value_counts(values.filter(pc.is_in(values, value_set=self._frozen_set)))
            for value, count in zip(
                counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True
            ):
                self.frozen_top[value] += count
        if self.counts is None:
            self._sketch(hashes if missing == 0 else hashes[np.asarray(array.is_valid())])

    def add_strings(self, dictionary: pa.Array, indices: np.ndarray, distinct_hashes: np.ndarray) -> None:
        """A batch of a string column, dictionary-encoded: the batch's distinct values, each row's
        index into them (len(dictionary) for a missing cell) and the values' hashes."""
        counts = np.bincount(indices, minlength=len(dictionary) + 1)
        present = self._count(len(indices), int(counts[-1]))
        if present == 0:
            return
        counts = counts[:-1]
        lo, hi = pc.min_max(dictionary).values()
        self._extremes(lo, hi)
        lengths = pc.utf8_length(dictionary).to_numpy(zero_copy_only=False)
        self.length_sum += int((lengths.astype(np.int64) * counts).sum())
        if self.counts is not None:
            self._track(dictionary, counts)
        else:
            where = pc.index_in(self._frozen_set, value_set=dictionary).to_numpy(zero_copy_only=False)
            for value, position in zip(self.frozen_top, where, strict=True):
                if position == position and position is not None:  # not NaN/None: in this batch
                    self.frozen_top[value] += int(counts[int(position)])
        if self.counts is None:
            self._sketch(distinct_hashes)

    def _count(self, n: int, missing: int) -> int:
        self.missing += missing
        self.count += n - missing
        return n - missing

    def _extremes(self, lo: pa.Scalar, hi: pa.Scalar) -> None:
        if self.min is None or lo.as_py() < self.min.as_py():
            self.min = lo
        if self.max is None or hi.as_py() > self.max.as_py():
            self.max = hi

    def _track(self, values: pa.Array, counts: np.ndarray) -> None:
        """Add exact counts of `values`, or switch to the sketch when there are too many."""
        if len(values) + len(self.counts) > TRACKED_VALUES:
            self._overflow(values, counts)
            return
        for value, count in zip(values.to_pylist(), counts.tolist(), strict=True):
            if count:
                self.counts[value] = self.counts.get(value, 0) + count

    def _overflow(self, batch_values: pa.Array, batch_counts: np.ndarray) -> None:
        """Too many distinct values to count them all: from now on, a distinct-count sketch, and
        counts of only the (then) most frequent values (top values become approximate)."""
        keep = np.argsort(-batch_counts, kind="stable")[:TOP_KEPT]
        merged = dict(self.counts)
        for value, count in zip(
            batch_values.take(pa.array(keep)).to_pylist(), batch_counts[keep].tolist(), strict=True
        ):
            if count:
                merged[value] = merged.get(value, 0) + count
        self.frozen_top = dict(sorted(merged.items(), key=lambda kv: -kv[1])[:TOP_KEPT])
        self._frozen_set = pa.array(list(self.frozen_top), type=batch_values.type)
        if self.counts:
            self._sketch(_hash_column(pa.array(list(self.counts), type=batch_values.type)))
        self.counts = None

    def _merge_moments(self, values: np.ndarray) -> None:
        n_b = len(values)
        if n_b == 0:
            return
        mean_b = float(values.mean())
        m2_b = float(((values - mean_b) ** 2).sum())
        n_a = self.count - n_b
        total = self.count
        delta = mean_b - self.mean
        self.mean += delta * n_b / total
        self.m2 += m2_b + delta * delta * n_a * n_b / total

    def _sketch(self, hashes: np.ndarray) -> None:
        if len(self.sketch) == SKETCH_K:  # only hashes below the k-th smallest can enter
            hashes = hashes[hashes < self.sketch[-1]]
        if len(hashes):
            self.sketch = _sorted_unique(np.concatenate([self.sketch, hashes]))[:SKETCH_K]

    @property
    def distinct(self) -> tuple[int, bool]:
        if self.counts is not None:
            return len(self.counts), False
        if len(self.sketch) < SKETCH_K:
            return len(self.sketch), False
        kth = float(self.sketch[-1]) / 2.0**64
        return int(round((SKETCH_K - 1) / kth)), True

    def top(self) -> tuple[list, bool]:
        source = self.counts if self.counts is not None else self.frozen_top
        ranked = sorted(source.items(), key=lambda kv: (-kv[1], str(kv[0])))[:TOP_VALUES]
        return ranked, self.counts is None


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique by sorting (faster than its hash-based path for many distinct 64-bit values)."""
    if len(values) == 0:
        return values
    values = np.sort(values)
    return values[np.concatenate(([True], values[1:] != values[:-1]))]


_MULTIPLIER = np.uint64(0x100000001B3)
_MISSING_HASH = np.uint64(0x9E3779B97F4A7C15)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: spreads the bits of a 64-bit value."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _hash_strings(array: pa.Array) -> np.ndarray:
    """64-bit hashes of the values of a string array without nulls, vectorized over its buffers:
    Horner's rule over the bytes (mod 2**64), one step per byte position for the strings that are
    that long, then mixed with the length."""
    if pa.types.is_large_string(array.type) or pa.types.is_large_binary(array.type):
        offset_type = np.int64
    else:
        offset_type = np.int32
    _, offsets_buffer, data_buffer = array.buffers()
    width = np.dtype(offset_type).itemsize
    offsets = np.frombuffer(
        offsets_buffer, dtype=offset_type, count=len(array) + 1, offset=array.offset * width
    )
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer else np.zeros(1, np.uint8)
    starts = offsets[:-1].astype(np.int64)
    lengths = np.diff(offsets).astype(np.int64)
    hashes = np.zeros(len(array), dtype=np.uint64)
    live = np.flatnonzero(lengths > 0)
    position = 0
    with np.errstate(over="ignore"):
        while len(live):
            hashes[live] = hashes[live] * _MULTIPLIER + data[starts[live] + position] + np.uint64(1)
            position += 1
            live = live[lengths[live] > position]
        return _mix(hashes ^ (lengths.astype(np.uint64) * _MISSING_HASH))


def _hash_column(array: pa.Array) -> np.ndarray:
    """A 64-bit hash per cell (missing cells hash alike). Strings are hashed once per distinct
    value of the batch, through Arrow's dictionary encoding."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_null(array.type):
        return np.full(len(array), _MISSING_HASH, dtype=np.uint64)
    if kind_of(array.type) == "string":
        encoded = pc.dictionary_encode(array) if not pa.types.is_dictionary(array.type) else array
        distinct = _hash_strings(encoded.dictionary)
        indices = encoded.indices.fill_null(len(distinct)).to_numpy(zero_copy_only=False)
        return np.append(distinct, _MISSING_HASH)[indices]
    values = array.to_numpy(zero_copy_only=False)
    if values.dtype.kind == "M":
        values = values.astype("int64")
    return pd.util.hash_array(values, categorize=False)


class Profiler:
    """Feed it batches with `add`; `finish` returns the raw statistics (see `RawProfile`)."""

    def __init__(self, schema: pa.Schema):
        self.schema = schema
        self.columns = [_ColumnStats(f.name, f.type) for f in schema]
        self.rows = 0
        self._row_hashes: list[np.ndarray] = []
        self._rng = np.random.default_rng(_SEED)
        self._sample: pa.Table | None = None
        self._sample_keys = np.empty(0)

    def add(self, batch: pa.RecordBatch) -> None:
        n = batch.num_rows
        if n == 0:
            return
        row_hash = np.zeros(n, dtype=np.uint64)
        for stats, array in zip(self.columns, batch.columns, strict=True):
            if pa.types.is_dictionary(array.type):
                array = array.cast(array.type.value_type)
            if stats.kind == "string" and not pa.types.is_null(array.type):
                encoded = pc.dictionary_encode(array)
                distinct = _hash_strings(encoded.dictionary)
                indices = encoded.indices.fill_null(len(distinct)).to_numpy(zero_copy_only=False)
                stats.add_strings(encoded.dictionary, indices, distinct)
                hashes = np.append(distinct, _MISSING_HASH)[indices]
            else:
                hashes = _hash_column(array)
                if not pa.types.is_null(array.type):
                    stats.add(array, hashes)
                else:
                    stats._count(len(array), len(array))
            with np.errstate(over="ignore"):
                row_hash = row_hash * np.uint64(1_000_003) + hashes
        self._row_hashes.append(row_hash)
        self._add_sample(batch)
        self.rows += n

    def _add_sample(self, batch: pa.RecordBatch) -> None:
        """Keep the SAMPLE_ROWS rows with the smallest random keys: a uniform sample."""
        keys = self._rng.random(batch.num_rows)
        table = pa.Table.from_batches([batch])
        if self._sample is not None:
            table = pa.concat_tables([self._sample, table])
            keys = np.concatenate([self._sample_keys, keys])
        if len(keys) > SAMPLE_ROWS:
            keep = np.argpartition(keys, SAMPLE_ROWS)[:SAMPLE_ROWS]
            keep.sort()
            table, keys = table.take(pa.array(keep)), keys[keep]
        self._sample, self._sample_keys = table.combine_chunks(), keys

    def finish(self) -> RawProfile:
        hashes = np.concatenate(self._row_hashes) if self._row_hashes else np.empty(0, np.uint64)
        self._row_hashes = []
        hashes.sort()  # in place: 8 bytes per row, no second copy
        duplicates = int(np.count_nonzero(hashes[1:] == hashes[:-1])) if len(hashes) else 0
        del hashes
        sample = self._sample if self._sample is not None else self.schema.empty_table()
        return RawProfile(self.rows, self.columns, duplicates, sample)


def sample_rows(schema: pa.Schema, batches) -> pa.Table:
    """The uniform row sample `Profiler` keeps, alone (for re-checking label warnings)."""
    profiler = Profiler(schema)
    for batch in batches:
        profiler._add_sample(batch)
    return profiler._sample if profiler._sample is not None else schema.empty_table()


class RawProfile:
    """Statistics before types are known; `column_dicts` turns them into the stored form."""

    def __init__(self, rows: int, columns: list[_ColumnStats], duplicates: int, sample: pa.Table):
        self.rows, self.columns, self.duplicates, self.sample = rows, columns, duplicates, sample

    def stats(self, name: str) -> _ColumnStats:
        return next(c for c in self.columns if c.name == name)

    def column_dict(self, stats: _ColumnStats) -> dict:
        distinct, approximate = stats.distinct
        top, top_approx = stats.top()
        out = {
            "name": stats.name,
            "count": stats.count,
            "missing": stats.missing,
            "distinct": distinct,
            "distinct_approximate": approximate,
            "min": tag(stats.min),
            "max": tag(stats.max),
            "top": [[tag(v), c] for v, c in top],
            "top_approximate": top_approx,
        }
        if stats.kind in ("number", "bool") and stats.count:
            out["mean"] = stats.mean
        if stats.kind == "number" and stats.count:
            out["std"] = float(np.sqrt(stats.m2 / stats.count))
            values = _as_numbers(self.sample.column(stats.name).combine_chunks(), "number")
            if len(values):
                out["quantiles"] = [[q, float(np.quantile(values, q))] for q in QUANTILES]
        if stats.kind == "string" and stats.count:
            out["mean_length"] = stats.length_sum / stats.count
        return out


def add_histograms(columns: list[dict], sample: pa.Table, rows: int, kinds: dict[str, str]) -> None:
    """Histograms of number and time columns, between the exact min and max. Exact when the table
    has at most SAMPLE_ROWS rows (the sample is then every row); otherwise the sample's counts
    scaled to the column's count (largest remainders, so the bins still add up to it)."""
    for col in columns:
        kind = kinds.get(col["name"])
        if kind not in ("number", "time") or not col.get("min") or not col.get("max"):
            continue
        lo, hi = float(col["min"][1]), float(col["max"][1])
        if not (np.isfinite(lo) and np.isfinite(hi)):
            continue
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, HISTOGRAM_BINS + 1)
        values = _as_numbers(sample.column(col["name"]).combine_chunks(), kind)
        counts = np.histogram(values[np.isfinite(values)], bins=edges)[0]
        if sample.num_rows < rows and counts.sum():
            exact = counts * (col["count"] / counts.sum())
            counts = np.floor(exact).astype(np.int64)
            short = col["count"] - int(counts.sum())
            counts[np.argsort(-(exact - counts), kind="stable")[:short]] += 1
        col["histogram"] = {"edges": edges.tolist(), "counts": counts.tolist()}
