"""Streaming profile of a table: fed one Arrow record batch at a time, memory bounded by settings.

Exact: counts, missing, min/max, mean/std, mean length (merged per batch), top values and distinct
counts of columns with at most `TRACKED_VALUES` distinct values. Approximate, for large inputs only:

* distinct counts above `TRACKED_VALUES`: a k-minimum-values sketch over 64-bit value hashes
  (k = 4096, relative error about 1/sqrt(k) = 1.6 %);
* top values of such columns: counted in the row sample below and scaled to the column's count
  (`top_approximate` is set);
* quantiles, histograms (bin counts scaled to the column's count; the edges span the exact
  min/max) and the label-leak check: computed on a uniform random sample of `SAMPLE_ROWS` rows,
  which is every row when the table is smaller.
* duplicated rows: counted by 64-bit row hashes (8 bytes per row; a hash collision would count a
  false duplicate with probability about rows²/2⁶⁵).
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from loopml.services.dataset.core.values import tag

TRACKED_VALUES = 10_000
SKETCH_K = 4096
SAMPLE_ROWS = 50_000
TOP_VALUES = 20
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

    def add(self, array: pa.Array) -> np.ndarray:
        """A batch of the column; returns its cell hashes (for the row hashes)."""
        if self.kind == "string" and self.counts is not None:
            return self._add_few_strings(array)
        hashes = _hash_column(array)
        missing = array.null_count
        present = self._count(len(array), missing)
        if present == 0:
            return hashes
        lo, hi = pc.min_max(array).values()
        self._extremes(lo, hi)
        if self.kind in ("number", "bool"):
            self._merge_moments(_as_numbers(array, self.kind))
        elif self.kind == "string":
            self.length_sum += pc.sum(pc.utf8_length(array)).as_py() or 0
        if self.counts is not None:
            counted = pc.value_counts(array.drop_null() if missing else array)
            self._track(counted.field("values"), counted.field("counts").to_numpy())
        if self.counts is None:
            self._sketch(hashes if missing == 0 else hashes[np.asarray(array.is_valid())])
        return hashes

    def _add_few_strings(self, array: pa.Array) -> np.ndarray:
        """A string column still counted exactly: one dictionary encoding gives the counts, and
        the hashes, lengths and extremes come from its few distinct values."""
        encoded = pc.dictionary_encode(array)
        values = encoded.dictionary
        codes = pc.fill_null(encoded.indices, len(values)).to_numpy()  # len(values): missing
        hashes = np.append(_hash_column(values), _MISSING_HASH)[codes]
        missing = array.null_count
        if self._count(len(array), missing) == 0:
            return hashes
        counts = np.bincount(codes, minlength=len(values) + 1)[:-1]
        lo, hi = pc.min_max(values).values()
        self._extremes(lo, hi)
        self.length_sum += int((pc.utf8_length(values).to_numpy() * counts).sum())
        self._track(values, counts)
        if self.counts is None:
            self._sketch(hashes if missing == 0 else hashes[codes < len(values)])
        return hashes

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
        """Too many distinct values to count them all: from now on, a distinct-count sketch (the
        values counted so far enter it; the caller adds the batch's hashes)."""
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

    def top(self, sample: pa.Table) -> tuple[list, bool]:
        """The most frequent values with their counts; estimated from `sample` (counts scaled to the
        column's count) once the column has too many distinct values to count them all."""
        if self.counts is not None:
            return _ranked(self.counts.items()), False
        values = sample.column(self.name).drop_null()
        if len(values) == 0:
            return [], True
        counted = pc.value_counts(values)
        candidates = counted.field("values")
        # scaled to the column's count and rounded half to even, as round() does
        scaled = np.rint(counted.field("counts").to_numpy() * (self.count / len(values))).astype(np.int64)
        if len(scaled) > TOP_VALUES:  # only values reaching the TOP_VALUES-th largest count can rank
            keep = np.flatnonzero(scaled >= np.partition(scaled, -TOP_VALUES)[-TOP_VALUES])
            candidates, scaled = candidates.take(pa.array(keep)), scaled[keep]
        return _ranked(zip(candidates.to_pylist(), scaled.tolist(), strict=True)), True


def _ranked(counts: Iterable[tuple[object, int]]) -> list[tuple[object, int]]:
    """The TOP_VALUES (value, count) pairs with the largest counts, ties in the order of their text."""
    return heapq.nsmallest(TOP_VALUES, counts, key=lambda kv: (-kv[1], str(kv[0])))


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique by sorting (faster than its hash-based path for many distinct 64-bit values)."""
    if len(values) == 0:
        return values
    values = np.sort(values)
    return values[np.concatenate(([True], values[1:] != values[:-1]))]


_MULTIPLIER = np.uint64(0x100000001B3)
_MISSING_HASH = np.uint64(0x9E3779B97F4A7C15)
_UPPER_HALF = np.uint64(1 << 63)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: spreads the bits of a 64-bit value."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


#: Bytes of string data hashed in one vectorized step (the power tables hold this many entries).
_WINDOW = 1 << 20
_INVERSE = np.uint64(pow(int(_MULTIPLIER), -1, 2**64))
_powers: tuple[np.ndarray, np.ndarray] | None = None


def _power_tables() -> tuple[np.ndarray, np.ndarray]:
    """(M**-j, M**j) mod 2**64 for j < _WINDOW, built on first use (16 MB)."""
    global _powers
    if _powers is None:
        one = np.ones(1, dtype=np.uint64)
        with np.errstate(over="ignore"):
            down = np.cumprod(np.full(_WINDOW - 1, _INVERSE, dtype=np.uint64))
            up = np.cumprod(np.full(_WINDOW - 1, _MULTIPLIER, dtype=np.uint64))
        _powers = (np.concatenate([one, down]), np.concatenate([one, up]))
    return _powers


def _hash_strings(array: pa.Array) -> np.ndarray:
    """64-bit hashes of the values of a string or binary array (null cells hash as empty strings),
    vectorized over its buffers: the polynomial sum(byte[j] * M**-(j - start)) mod 2**64 of each
    value, from one prefix sum over the data buffer (M is odd, so M**-1 exists mod 2**64), mixed
    with the value's length. A value longer than _WINDOW bytes is hashed on its own with blake2b."""
    if pa.types.is_large_string(array.type) or pa.types.is_large_binary(array.type):
        offset_type = np.int64
    else:
        offset_type = np.int32
    _, offsets_buffer, data_buffer = array.buffers()
    width = np.dtype(offset_type).itemsize
    offsets = np.frombuffer(
        offsets_buffer, dtype=offset_type, count=len(array) + 1, offset=array.offset * width
    ).astype(np.int64)
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer else np.zeros(1, np.uint8)
    down, up = _power_tables()
    hashes = np.zeros(len(array), dtype=np.uint64)
    # sums[1 + j]: the prefix sum over the window's first j + 1 bytes, computed in place
    sums = np.empty(min(_WINDOW, int(offsets[-1] - offsets[0])) + 1, dtype=np.uint64)
    sums[0] = 0
    start = 0
    with np.errstate(over="ignore"):
        while start < len(array):
            # rows [start, stop) whose bytes fit in one window
            stop = int(np.searchsorted(offsets, offsets[start] + _WINDOW, side="right")) - 1
            lo = offsets[start]
            if stop <= start:
                value = data[lo : offsets[start + 1]].tobytes()
                hashes[start] = int.from_bytes(hashlib.blake2b(value, digest_size=8).digest(), "little")
                start += 1
                continue
            stop = min(stop, len(array))
            hi = offsets[stop]
            window = sums[1 : hi - lo + 1]
            np.multiply(data[lo:hi], down[: hi - lo], out=window)
            np.cumsum(window, out=window)
            relative = offsets[start : stop + 1] - lo
            hashes[start:stop] = (sums[relative[1:]] - sums[relative[:-1]]) * up[relative[:-1]]
            start = stop
        lengths = np.diff(offsets).astype(np.uint64)
        return _mix(hashes ^ (lengths * _MISSING_HASH))


def _hash_column(array: pa.Array) -> np.ndarray:
    """A 64-bit hash per cell (missing cells hash alike)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_null(array.type):
        return np.full(len(array), _MISSING_HASH, dtype=np.uint64)
    if kind_of(array.type) == "string":
        hashes = _hash_strings(array)
    else:
        values = array.to_numpy(zero_copy_only=False)
        if values.dtype.kind == "M":
            values = values.astype("int64")
        hashes = pd.util.hash_array(values, categorize=False)
    if array.null_count:
        hashes = np.where(np.asarray(array.is_valid()), hashes, _MISSING_HASH)
    return hashes


class Profiler:
    """Feed it batches with `add`; `finish` returns the raw statistics (see `RawProfile`)."""

    def __init__(self, schema: pa.Schema):
        self.schema = schema
        self.columns = [_ColumnStats(f.name, f.type) for f in schema]
        self.rows = 0
        # row hashes below and from 2**63 (8 bytes per row)
        self._row_hashes: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
        self._rng = np.random.default_rng(_SEED)
        # Sample candidates: batches' rows whose random key was below the threshold, compacted
        # to the SAMPLE_ROWS smallest keys whenever twice as many are pending.
        self._pool: list[pa.Table] = []
        self._pool_keys: list[np.ndarray] = []
        self._pending = 0
        self._threshold = np.inf

    def add(self, batch: pa.RecordBatch) -> None:
        n = batch.num_rows
        if n == 0:
            return
        row_hash = np.zeros(n, dtype=np.uint64)
        for stats, array in zip(self.columns, batch.columns, strict=True):
            if pa.types.is_dictionary(array.type):
                array = array.cast(array.type.value_type)
            if pa.types.is_null(array.type):
                stats._count(len(array), len(array))
                hashes = _hash_column(array)
            else:
                hashes = stats.add(array)
            with np.errstate(over="ignore"):
                row_hash = row_hash * np.uint64(1_000_003) + hashes
        upper = row_hash >= _UPPER_HALF  # equal hashes fall in the same half of the range
        self._row_hashes[0].append(row_hash[~upper])
        self._row_hashes[1].append(row_hash[upper])
        self._add_sample(batch)
        self.rows += n

    def _add_sample(self, batch: pa.RecordBatch) -> None:
        """Keep the SAMPLE_ROWS rows with the smallest random keys: a uniform sample."""
        keys = self._rng.random(batch.num_rows)
        chosen = np.flatnonzero(keys < self._threshold)
        if len(chosen) == 0:
            return
        table = pa.Table.from_batches([batch])
        if len(chosen) < len(keys):
            table, keys = table.take(pa.array(chosen)), keys[chosen]
        self._pool.append(table)
        self._pool_keys.append(keys)
        self._pending += len(keys)
        if self._pending >= 2 * SAMPLE_ROWS:
            self._compact()

    def _compact(self) -> None:
        table, keys = pa.concat_tables(self._pool), np.concatenate(self._pool_keys)
        if len(keys) > SAMPLE_ROWS:
            keep = np.sort(np.argpartition(keys, SAMPLE_ROWS)[:SAMPLE_ROWS])
            table, keys = table.take(pa.array(keep)), keys[keep]
            self._threshold = keys.max()
        self._pool, self._pool_keys, self._pending = [table.combine_chunks()], [keys], len(keys)

    def sample(self) -> pa.Table:
        if not self._pool:
            return self.schema.empty_table()
        self._compact()
        return self._pool[0]

    def finish(self) -> RawProfile:
        halves, self._row_hashes = self._row_hashes, ([], [])
        # the two halves are sorted on two cores (numpy sorts without the GIL)
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="dataset-duplicates") as pool:
            duplicates = sum(pool.map(_duplicates, halves))
        return RawProfile(self.rows, self.columns, duplicates, self.sample())


def _duplicates(parts: list[np.ndarray]) -> int:
    """How many of the hashes in `parts` equal an earlier one (empties `parts`, whose arrays are
    freed before the sort)."""
    hashes = np.concatenate(parts) if parts else np.empty(0, np.uint64)
    parts.clear()
    hashes.sort()  # in place: no second copy
    return int(np.count_nonzero(hashes[1:] == hashes[:-1]))


def sample_rows(schema: pa.Schema, batches) -> pa.Table:
    """The uniform row sample `Profiler` keeps, alone (for re-checking label warnings)."""
    profiler = Profiler(schema)
    for batch in batches:
        profiler._add_sample(batch)
    return profiler.sample()


class RawProfile:
    """Statistics before types are known; `column_dicts` turns them into the stored form."""

    def __init__(self, rows: int, columns: list[_ColumnStats], duplicates: int, sample: pa.Table):
        self.rows, self.columns, self.duplicates, self.sample = rows, columns, duplicates, sample

    def stats(self, name: str) -> _ColumnStats:
        return next(c for c in self.columns if c.name == name)

    def column_dict(self, stats: _ColumnStats) -> dict:
        distinct, approximate = stats.distinct
        top, top_approx = stats.top(self.sample)
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
                out["quantiles"] = [
                    [q, float(v)] for q, v in zip(QUANTILES, np.quantile(values, QUANTILES), strict=True)
                ]
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
