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
        if self.counts is not None and self.count + self.missing == 0 and _many_values(array):
            self._overflow(array.type)  # the first batch alone has too many values to count
        if self.kind == "string" and self.counts is not None:
            return self._add_few_strings(array)
        hashes = _hash_column(array)
        missing = array.null_count
        present = self._count(len(array), missing)
        if present == 0:
            return hashes
        lo, hi = pc.min_max(array).values()
        self._extremes(lo, hi)
        if pa.types.is_integer(array.type) or array.type in (pa.float32(), pa.float64()):
            # Arrow's kernels in two passes, no copies (nulls skipped, integers not turned to floats)
            mean = pc.mean(array).as_py()
            self._merge_moments(present, mean, pc.variance(array, ddof=0).as_py() * present)
        elif self.kind in ("number", "bool"):
            values = _as_numbers(array, self.kind)
            mean = float(values.mean())
            deviations = values - mean
            self._merge_moments(present, mean, float(np.dot(deviations, deviations)))
        elif self.kind == "string":
            self.length_sum += _characters(array)
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
        self.length_sum += int((_lengths(values).to_numpy() * counts).sum())
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
            self._overflow(values.type)
            return
        for value, count in zip(values.to_pylist(), counts.tolist(), strict=True):
            if count:
                self.counts[value] = self.counts.get(value, 0) + count

    def _overflow(self, value_type: pa.DataType) -> None:
        """Too many distinct values to count them all: from now on, a distinct-count sketch (the
        values counted so far enter it; the caller adds the batch's hashes)."""
        if self.counts:
            self._sketch(_hash_column(pa.array(list(self.counts), type=value_type)))
        self.counts = None

    def _merge_moments(self, n_b: int, mean_b: float, m2_b: float) -> None:
        """Merge a batch's count, mean and sum of squared deviations (already in `count`)."""
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
            keep = _top_candidates(candidates, scaled)
            candidates, scaled = candidates.take(pa.array(keep)), scaled[keep]
        return _ranked(zip(candidates.to_pylist(), scaled.tolist(), strict=True)), True


def _many_values(array: pa.Array) -> bool:
    """Whether the first rows of `array` alone hold more than TRACKED_VALUES distinct values (a
    mostly distinct column: counting all of its values in a hash table would be thrown away)."""
    if len(array) - array.null_count <= TRACKED_VALUES:
        return False
    return pc.count_distinct(array.slice(0, 2 * TRACKED_VALUES)).as_py() > TRACKED_VALUES


def _top_candidates(values: pa.Array, counts: np.ndarray) -> np.ndarray:
    """Positions of the values that can be among the TOP_VALUES largest `counts`: those above the
    TOP_VALUES-th largest count, and of the ties at it as many as can rank, the first in the order
    of their text (a sample of mostly distinct values is all ties: this spares turning them all
    into Python objects and comparing their texts in Python)."""
    cutoff = np.partition(counts, -TOP_VALUES)[-TOP_VALUES]
    above, tied = np.flatnonzero(counts > cutoff), np.flatnonzero(counts == cutoff)
    wanted = TOP_VALUES - len(above)
    if len(tied) > wanted:
        tied = np.sort(tied[_text_order(values.take(pa.array(tied)))[:wanted]])
    return np.sort(np.concatenate([above, tied]))


def _text_order(values: pa.Array) -> np.ndarray:
    """Positions of `values` (no nulls) in the order of their Python text (`str`), sorted by Arrow
    (UTF-8 byte order is code point order)."""
    arrow_type = values.type
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pc.sort_indices(values).to_numpy()
    if pa.types.is_integer(arrow_type):  # Arrow writes the same digits as str()
        return pc.sort_indices(pc.cast(values, pa.string())).to_numpy()
    # str() of a date or time is zero-padded from the year down: its text order is the time order
    if pa.types.is_date(arrow_type) or (
        pa.types.is_timestamp(arrow_type) and arrow_type.tz in (None, "UTC", "+00:00")
    ):
        return pc.sort_indices(values).to_numpy()
    texts = pa.array([str(value) for value in values.to_pylist()], type=pa.string())
    return pc.sort_indices(texts).to_numpy()


def _offsets(array: pa.Array, *, wide: bool = True) -> np.ndarray:
    """The value offsets of a string or binary array, len(array) + 1 of them (as int64 where
    `wide`, else a view of the buffer)."""
    large = pa.types.is_large_string(array.type) or pa.types.is_large_binary(array.type)
    offset_type = np.int64 if large else np.int32
    width = np.dtype(offset_type).itemsize
    offsets = np.frombuffer(
        array.buffers()[1], dtype=offset_type, count=len(array) + 1, offset=array.offset * width
    )
    return offsets.astype(np.int64) if wide else offsets


def _ascii_bytes(data_buffer: pa.Buffer | None, lo: int, hi: int) -> bool:
    """Whether bytes [lo, hi) of a buffer are all ASCII (none from 0x80)."""
    if hi <= lo:
        return True
    return int(np.frombuffer(data_buffer, dtype=np.uint8, count=hi - lo, offset=lo).max()) < 0x80


def _is_ascii(array: pa.Array) -> bool:
    """Whether a string array's values are all ASCII, where a value's length in characters is its
    length in bytes (one cheap pass over the data instead of counting characters)."""
    offsets = _offsets(array, wide=False)
    return _ascii_bytes(array.buffers()[2], int(offsets[0]), int(offsets[-1]))


def _lengths(array: pa.Array) -> pa.Array:
    """Each value's length in characters (null where missing)."""
    return pc.binary_length(array) if _is_ascii(array) else pc.utf8_length(array)


def _characters(array: pa.Array) -> int:
    """The characters of all values of a string array."""
    return pc.sum(_lengths(array)).as_py() or 0


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
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


def _mix(values: np.ndarray, *, in_place: bool = True) -> np.ndarray:
    """splitmix64's finalizer: spreads the bits of 64-bit values, in place or into a new array
    (then `values` may be read-only or narrower unsigned integers, and is not copied first)."""
    shifted = np.right_shift(values, np.uint64(30))
    if in_place:
        z = values
        z ^= shifted
    else:
        z, shifted = shifted, np.empty(values.shape, dtype=np.uint64)
        z ^= values
    z *= _MIX_1
    np.right_shift(z, np.uint64(27), out=shifted)
    z ^= shifted
    z *= _MIX_2
    np.right_shift(z, np.uint64(31), out=shifted)
    z ^= shifted
    return z


#: 8-byte words of string data hashed in one vectorized step (the power tables hold this many).
_WINDOW_WORDS = 1 << 17
_INVERSE = np.uint64(pow(int(_MULTIPLIER), -1, 2**64))
#: The first r bytes of a little-endian word, for r = 0..8.
_TAIL_MASKS = np.array([(1 << (8 * r)) - 1 for r in range(9)], dtype=np.uint64)
_powers: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


def _power_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(M**-j, M**j mod 2**64, 8 * j) for j < _WINDOW_WORDS, built on first use (3 MB)."""
    global _powers
    if _powers is None:
        one = np.ones(1, dtype=np.uint64)
        down = np.cumprod(np.full(_WINDOW_WORDS - 1, _INVERSE, dtype=np.uint64))
        up = np.cumprod(np.full(_WINDOW_WORDS - 1, _MULTIPLIER, dtype=np.uint64))
        eights = np.arange(0, 8 * _WINDOW_WORDS, 8, dtype=np.int64)
        _powers = (np.concatenate([one, down]), np.concatenate([one, up]), eights)
    return _powers


def _hash_strings(array: pa.Array) -> np.ndarray:
    """64-bit hashes of the values of a string or binary array (null cells hash as empty strings),
    vectorized over its buffers. A value is read as 8-byte little-endian words (the last one
    zero-padded), each word is mixed on its own (so that values differing in several bytes do
    not cancel out), and the value's hash is the polynomial sum(mix(word[k]) * M**-k) mod 2**64,
    from one prefix sum over a window of words (M is odd, so M**-1 exists mod 2**64), mixed with
    the value's length. A value longer than the window is hashed on its own with blake2b."""
    data_buffer = array.buffers()[2]
    offsets = _offsets(array)
    lengths = np.diff(offsets)
    words = (lengths + 7) >> 3
    paddable = pa.types.is_string(array.type) or pa.types.is_large_string(array.type)
    word_ends = np.cumsum(words)
    hashes = np.zeros(len(array), dtype=np.uint64)
    start = 0
    while start < len(array):
        # rows [start, stop) whose words fit in one window
        first_word = word_ends[start] - words[start]
        stop = int(np.searchsorted(word_ends, first_word + _WINDOW_WORDS, side="right"))
        if stop <= start:
            lo, hi = offsets[start], offsets[start + 1]
            value = np.frombuffer(data_buffer, dtype=np.uint8, count=hi - lo, offset=lo).tobytes()
            hashes[start] = int.from_bytes(hashlib.blake2b(value, digest_size=8).digest(), "little")
            start += 1
            continue
        lo, hi = int(offsets[start]), int(offsets[stop])
        if hi > lo:
            width = 8 * int(words[start:stop].max())
            padded_size = (stop - start) * width  # at most twice the words' bytes: pad to the widest
            if (
                paddable
                and padded_size <= 16 * (word_ends[stop - 1] - first_word)
                and _ascii_bytes(data_buffer, lo, hi)
            ):
                hashes[start:stop] = _hash_padded(array.slice(start, stop - start), width)
            else:
                hashes[start:stop] = _hash_words(data_buffer, offsets[start : stop + 1], words[start:stop])
        start = stop
    hashes ^= lengths.astype(np.uint64) * _MISSING_HASH
    return _mix(hashes)


def _hash_padded(array: pa.Array, width: int) -> np.ndarray:
    """The word polynomials of ASCII values at most `width` bytes long (a multiple of 8): Arrow
    pads them with zero bytes to that width, a table of words with a row per value (no gathering
    of words). Zero words add nothing, as splitmix64 maps 0 to 0: the sums equal `_hash_words`."""
    if array.null_count:
        array = pc.fill_null(array, "")
    padded = pc.ascii_rpad(array, width=width, padding="\0")
    start = int(_offsets(padded, wide=False)[0])
    columns = width // 8
    table = np.frombuffer(padded.buffers()[2], dtype="<u8", count=len(array) * columns, offset=start)
    table = _mix(table.reshape(len(array), columns), in_place=False)
    down = _power_tables()[0]
    hashes = table[:, 0].copy()
    for k in range(1, columns):
        table[:, k] *= down[k]
        hashes += table[:, k]
    return hashes


def _hash_words(data_buffer: pa.Buffer, offsets: np.ndarray, words: np.ndarray) -> np.ndarray:
    """The word polynomials of the values between `offsets` (at least one byte in all; together
    at most _WINDOW_WORDS words), 0 for empty values."""
    lo, hi = int(offsets[0]), int(offsets[-1])
    if hi + 8 <= data_buffer.size:  # a word loaded at a value's last bytes stays in the buffer
        source, at = data_buffer, lo
    else:  # the buffer's end: a copy with 8 bytes of padding
        source, at = np.zeros(hi - lo + 8, dtype=np.uint8), 0
        source[: hi - lo] = np.frombuffer(data_buffer, dtype=np.uint8, count=hi - lo, offset=lo)
    # a little-endian 64-bit word starting at every byte of the window (unaligned, no copy)
    word_at = np.ndarray(shape=(hi - lo,), dtype="<u8", buffer=source, offset=at, strides=(1,))
    down, up, eights = _power_tables()
    present = words > 0
    counts = words[present]
    firsts = np.cumsum(counts) - counts  # each value's first word in the window
    lasts = firsts + counts - 1
    total = int(lasts[-1]) + 1
    # positions of the words in the window: value start + 8 * (word index in the value)
    positions = np.repeat(offsets[:-1][present] - lo - 8 * firsts, counts)
    positions += eights[:total]
    values = word_at[positions]
    tail_bytes = (offsets[1:] - offsets[:-1])[present] - 8 * (counts - 1)
    values[lasts] &= _TAIL_MASKS[tail_bytes]
    _mix(values)
    values *= down[:total]
    np.cumsum(values, out=values)
    sums = values[lasts]
    hashes = np.zeros(len(words), dtype=np.uint64)
    hashes[present] = np.diff(sums, prepend=np.uint64(0)) * up[firsts]
    return hashes


def _fixed_width_bits(arrow_type: pa.DataType) -> int | None:
    """Bits per value of integers, floats, timestamps and dates (hashed from their buffer)."""
    if (
        pa.types.is_integer(arrow_type)
        or pa.types.is_floating(arrow_type)
        or pa.types.is_timestamp(arrow_type)
        or pa.types.is_date(arrow_type)
    ):
        return arrow_type.bit_width
    return None


def _hash_column(array: pa.Array) -> np.ndarray:
    """A 64-bit hash per cell (missing cells hash alike)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_null(array.type):
        return np.full(len(array), _MISSING_HASH, dtype=np.uint64)
    if kind_of(array.type) == "string":
        hashes = _hash_strings(array)
    elif (bits := _fixed_width_bits(array.type)) is not None:
        # the values' bits, widened to 64 (null cells hold any bits: replaced below)
        width = bits // 8
        raw = np.frombuffer(
            array.buffers()[1], dtype=f"<u{width}", count=len(array), offset=array.offset * width
        )
        hashes = _mix(raw, in_place=False)
    else:
        hashes = pd.util.hash_array(array.to_numpy(zero_copy_only=False), categorize=False)
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
            row_hash *= np.uint64(1_000_003)  # wraps around mod 2**64
            row_hash += hashes
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
