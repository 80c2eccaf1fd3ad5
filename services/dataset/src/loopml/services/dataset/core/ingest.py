"""Turning uploaded bytes into a canonical Parquet file and a profile, in bounded memory.

`Spool.receive` writes the incoming chunks to a temporary file while hashing them and enforcing
the size limit. Meanwhile `convert_while_receiving`, in a worker thread, reads that file as it
grows (plain CSV/TSV in pieces cut at row ends, see `_GrowingSource`) and streams it batch by
batch through a ParquetWriter and the profiler, so parsing overlaps the transfer. Whatever that
attempt cannot do (Parquet, which needs the whole file; a column whose type must be widened; any
bad input) is done again by `convert` from the complete file, the one path that explains errors
by line and column.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from loopml.runtime.errors import InvalidArgument, ResourceExhausted
from loopml.services.dataset.core import formats
from loopml.services.dataset.core.formats import CONVERSION_ERROR, BatchSource, Detected
from loopml.services.dataset.core.model import Compression, CsvOptions, DataFormat
from loopml.services.dataset.core.profile import Profiler, RawProfile, add_histograms, kind_of

_WIDER = {"int64": pa.float64(), "double": pa.string(), "bool": pa.string()}


@dataclass
class Spooled:
    path: Path
    size: int
    sha256: str


#: Bytes the streaming conversion waits for before it detects the format (gzip needs a few
#: compressed blocks to show 4 KiB of text); an upload that ends sooner is converted from the file.
STREAM_START_BYTES = 1 << 20
#: Blocks of plain CSV/TSV parsed at a time while the upload arrives (by one `read_csv` call that
#: takes the piece as a single block).
PIECE_BLOCKS = 4
#: Batches that may wait for the profiler (each up to one piece of the file in memory).
PROFILE_QUEUE = 2
#: Rows of the first batch that decide which columns the Parquet file dictionary-encodes.
DICTIONARY_PROBE_ROWS = 32_768


@contextmanager
def scratch_dir(parent: str | None) -> Iterator[Path]:
    """A temporary folder under `parent` (the system's when None), removed with its files."""
    path = Path(tempfile.mkdtemp(prefix="loopml-dataset-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def file_sha256(path: Path) -> str:
    """Known up front, the digest lets the S3 store upload in place instead of upload-then-copy."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Abandoned(Exception):
    """The upload behind a growing spool failed or is no longer wanted."""


class Spool:
    """An upload written to a local file as it arrives, readable while it grows (`reader`)."""

    def __init__(self, path: Path):
        self.path = path
        self.size = 0
        self._changed = threading.Condition()
        self._finished = False
        self._failed = False

    def receive(self, chunks: Iterable[bytes], *, limit: int, expected_sha256: str = "") -> Spooled:
        """Write `chunks` to the file (in the caller's thread); on any failure readers are abandoned."""
        digest = hashlib.sha256()
        try:
            with open(self.path, "wb") as out:
                for chunk in chunks:
                    if self.size + len(chunk) > limit:
                        raise ResourceExhausted(f"file is larger than the upload limit of {limit} bytes")
                    digest.update(chunk)
                    out.write(chunk)
                    out.flush()
                    with self._changed:
                        self.size += len(chunk)
                        self._changed.notify_all()
            sha = digest.hexdigest()
            if expected_sha256 and expected_sha256.lower() != sha:
                raise InvalidArgument("header.sha256", f"does not match the bytes received (sha256 {sha})")
        except BaseException:
            self.abandon()
            raise
        with self._changed:
            self._finished = True
            self._changed.notify_all()
        return Spooled(self.path, self.size, sha)

    def abandon(self) -> None:
        """Make readers raise `Abandoned` (the upload failed, or its conversion is not needed)."""
        with self._changed:
            self._failed = True
            self._changed.notify_all()

    def wait_for(self, size: int) -> bool:
        """Wait until `size` bytes are written (True) or the upload has ended sooner (False)."""
        with self._changed:
            while self.size < size and not self._finished:
                if self._failed:
                    raise Abandoned()
                self._changed.wait()
            return self.size >= size

    def reader(self) -> _GrowingReader:
        return _GrowingReader(self)

    def _readable(self, position: int) -> int:
        """Bytes readable at `position`, waiting while the upload may still bring some; 0: the end."""
        with self._changed:
            while True:
                if self._failed:
                    raise Abandoned()
                if self.size > position or self._finished:
                    return self.size - position
                self._changed.wait()


class _GrowingReader:
    """A read-only binary file over a `Spool`: `read(n)` returns n bytes unless the upload ends first."""

    def __init__(self, spool: Spool):
        self._spool = spool
        self._file = open(spool.path, "rb")
        self._position = 0
        self.closed = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._position

    def readinto(self, view: memoryview) -> int:
        """Fill `view` from the spool; fewer bytes than its length only where the upload ends."""
        filled = 0
        while filled < len(view):
            available = self._spool._readable(self._position)
            if available == 0:
                break
            got = self._file.readinto(view[filled : filled + min(available, len(view) - filled)])
            self._position += got
            filled += got
        return filled

    def read(self, size: int = -1) -> bytes:
        parts, wanted = [], size if size >= 0 else None
        while wanted is None or wanted > 0:
            available = self._spool._readable(self._position)
            if available == 0:
                break
            data = self._file.read(available if wanted is None else min(available, wanted))
            self._position += len(data)
            parts.append(data)
            if wanted is not None:
                wanted -= len(data)
        return b"".join(parts)

    def close(self) -> None:
        self.closed = True
        self._file.close()


class _GrowingSource(BatchSource):
    """Batches of a spool that is still being written; it can be read only once.

    Plain CSV and TSV are cut into pieces of about `PIECE_BLOCKS` blocks at row ends (line ends
    outside quoted values), and each piece is parsed by `read_csv` as one block, in a helper thread
    one piece ahead of the consumer, with the column types the streaming reader infers from the
    first block. JSON Lines and gzip go through the streaming reader."""

    def __init__(self, spool: Spool, detected: Detected, csv: CsvOptions, block_size: int):
        super().__init__(spool.path, detected, csv, block_size)
        self._spool = spool
        self._opened = False

    def open(self, column_types: dict[str, pa.DataType] | None = None, *, use_threads: bool = True):
        if self._opened:  # a retry (wider types, a better error) needs the whole file
            raise Abandoned()
        self._opened = True
        if self.detected.format == DataFormat.JSONL or self.detected.compression == Compression.GZIP:
            return super().open(column_types, use_threads=use_threads)
        return self._open_pieces()

    def _input_stream(self) -> pa.NativeFile:
        stream = pa.PythonFile(self._spool.reader(), mode="r")
        return (
            pa.CompressedInputStream(stream, "gzip")
            if self.detected.compression == Compression.GZIP
            else stream
        )

    def _open_pieces(self) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        quote = (self.csv.quote_char or '"').encode()
        pieces = _Pieces(self._spool.reader(), PIECE_BLOCKS * self.block_size, quote)
        try:
            first = pieces.next()
            parse, convert = self.csv_options(None)
            schema = pacsv.open_csv(
                pa.BufferReader(pa.py_buffer(first)),
                read_options=pacsv.ReadOptions(block_size=self.block_size),
                parse_options=parse,
                convert_options=convert,
            ).schema
        except BaseException:
            pieces.close()
            raise
        quoted_parse, convert = self.csv_options(dict(zip(schema.names, schema.types, strict=True)))
        # A piece ends at a row end and is parsed as one block, so read_csv never looks for row
        # ends itself: the quote-aware search that `newlines_in_values` asks for is not needed
        # (its parser still reads line ends inside quoted values), and it costs a third of the
        # parse. One block is parsed on one core; the other runs the transfer, writer and profiler.
        one_block = pacsv.ParseOptions(
            delimiter=quoted_parse.delimiter, quote_char=quoted_parse.quote_char, newlines_in_values=False
        )
        names = schema.names

        def parsed(piece: memoryview, header: bool) -> pa.Table:
            read = pacsv.ReadOptions(
                block_size=len(piece) + 1, use_threads=False, column_names=None if header else names
            )
            return pacsv.read_csv(
                pa.BufferReader(pa.py_buffer(piece)),
                read_options=read,
                parse_options=one_block,
                convert_options=convert,
            )

        def next_table() -> pa.Table | None:
            piece = pieces.next()
            return parsed(piece, header=False) if len(piece) else None

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dataset-parse") as pool:
                    # one piece at a time: `pieces.next` reuses the buffer of the piece before
                    pending = pool.submit(parsed, first, True)
                    try:
                        while (table := pending.result()) is not None:
                            pending = pool.submit(next_table)
                            yield from table.to_batches()
                    finally:
                        pending.cancel()
            finally:
                pieces.close()  # after the helper thread has stopped reading

        return schema, batches()


class _Pieces:
    """Consecutive pieces of a growing CSV file, each ending at a row end: a line end with an even
    number of quote characters before it, so that no quoted value is cut in two (the last piece
    ends at the end of the file); empty once everything is read.

    The file is read straight into one reused buffer, and a piece is a view of it that is valid
    until the next call (read_csv copies the values it parses, so a parsed table outlives it)."""

    #: A piece this many times the wanted size without a row end is left to the whole-file reader.
    MAX_GROWTH = 8

    def __init__(self, reader: _GrowingReader, size: int, quote: bytes):
        self._reader, self._size, self._quote = reader, size, quote
        self._buffer = bytearray(2 * size)
        self._filled = 0  # bytes of file data in the buffer
        self._handed = 0  # of which the piece handed out last

    def next(self) -> memoryview:
        rest = self._filled - self._handed
        if self._handed:  # the rest after the last piece moves to the front
            self._buffer[:rest] = bytes(memoryview(self._buffer)[self._handed : self._filled])
        self._filled, self._handed = rest, 0
        while True:
            if len(self._buffer) < self._filled + self._size:  # a row longer than a piece
                grown = bytearray(2 * len(self._buffer))
                grown[: self._filled] = memoryview(self._buffer)[: self._filled]
                self._buffer = grown
            view = memoryview(self._buffer)
            more = self._reader.readinto(view[self._filled : self._filled + self._size])
            self._filled += more
            if more < self._size:  # the file has ended
                self._handed = self._filled
                return view[: self._filled]
            cut = self._row_end()
            if cut:  # else a row longer than a piece: read on
                self._handed = cut
                return view[:cut]
            if self._filled > self.MAX_GROWTH * self._size:
                raise Abandoned()  # e.g. an unbalanced quote: the exact reader names the line

    def _row_end(self) -> int:
        """The end of the last whole row in the buffer, which starts at a row start; 0 if none."""
        data = self._buffer
        cut = data.rfind(b"\n", 0, self._filled) + 1
        quotes = _count(data, cut, self._quote)
        while cut and quotes % 2:  # that line end is inside a quoted value: step back a line
            previous = data.rfind(b"\n", 0, cut - 1) + 1
            quotes -= data.count(self._quote, previous, cut)
            cut = previous
        return cut

    def close(self) -> None:
        self._reader.close()


#: Bytes compared at a time when counting quotes (the comparison's mask stays in the cache).
_COUNT_STEP = 1 << 20


def _count(data: bytearray, end: int, quote: bytes) -> int:
    """How often `quote` occurs in data[:end]; numpy counts a single byte in about a quarter of the
    time of bytes.count, a step at a time into one reused mask."""
    if len(quote) != 1 or end == 0:
        return data.count(quote, 0, end)
    values = np.frombuffer(data, np.uint8, count=end)
    mask = np.empty(min(end, _COUNT_STEP), dtype=bool)
    found = 0
    for start in range(0, end, _COUNT_STEP):
        part = values[start : start + _COUNT_STEP]
        np.equal(part, quote[0], out=mask[: len(part)])
        found += int(np.count_nonzero(mask[: len(part)]))
    return found


def convert_while_receiving(
    spool: Spool,
    filename: str,
    fmt: DataFormat | None,
    compression: Compression | None,
    csv: CsvOptions,
    block_size: int,
    out_path: Path,
) -> tuple[Detected, Converted] | None:
    """Convert and profile the upload as it arrives (run it in a worker thread beside
    `spool.receive`). None where the format cannot be read before the upload is complete (Parquet,
    a CSV without a header row) or the upload ended before STREAM_START_BYTES; raises on anything
    else that goes wrong, and the caller converts from the complete file instead."""
    if not spool.wait_for(STREAM_START_BYTES):
        return None
    detected = formats.detect(spool.path, filename, fmt, compression, "")
    if detected.format == DataFormat.PARQUET or csv.no_header:
        return None
    return detected, convert(_GrowingSource(spool, detected, csv, block_size), out_path)


@dataclass
class Converted:
    schema: pa.Schema
    rows: int
    raw: RawProfile
    columns: list[dict]  # per-column stored profile entries (histograms added)
    sha256: str  # of the Parquet file


def convert(source: BatchSource, out_path: Path) -> Converted:
    """Read `source` to the end, writing `out_path` (Parquet) and profiling as it goes."""
    overrides: dict[str, pa.DataType] = {}
    for _ in range(200):  # each retry widens one column; bounded by columns * 2
        try:
            return _convert_once(source, out_path, overrides)
        except _Widen as widen:
            overrides[widen.column] = widen.type
    raise InvalidArgument("file", "could not settle on column types")


class _Widen(Exception):
    def __init__(self, column: str, type_: pa.DataType):
        self.column, self.type = column, type_


def _convert_once(source: BatchSource, out_path: Path, overrides: dict) -> Converted:
    try:
        schema, batches = source.open(overrides)
    except InvalidArgument as exc:
        _explain(exc, None, source, overrides)
        raise
    formats.check_names(schema)
    profiler = Profiler(schema)
    writer = None
    rows = 0
    # The profiler runs in its own thread, a batch or two behind the writer: Arrow, numpy and
    # the Parquet writer release the GIL, so the two overlap on two cores.
    profiling: deque[Future] = deque()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dataset-profile") as profile_pool:
        try:
            try:
                for batch in batches:
                    _check_utf8(batch, source)
                    if writer is None:
                        writer = _parquet_writer(out_path, schema, batch)
                    profiling.append(profile_pool.submit(profiler.add, batch))
                    writer.write_batch(batch)
                    rows += batch.num_rows
                    if len(profiling) > PROFILE_QUEUE:
                        profiling.popleft().result()
            except InvalidArgument as exc:
                _explain(exc, schema, source, overrides)
                raise
            while profiling:
                profiling.popleft().result()
        finally:
            for pending in profiling:
                pending.cancel()
            if writer is not None:
                writer.close()
    if rows == 0:
        raise InvalidArgument("file", "has a header but no data rows (line 2 is missing)")
    # The Parquet file is complete: hash it (file reads and hashlib run without the GIL) while
    # the profile's last step runs beside it.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dataset-hash") as hash_pool:
        parquet_sha256 = hash_pool.submit(file_sha256, out_path)
        raw = profiler.finish()
        columns = [raw.column_dict(s) for s in raw.columns]
        kinds = {f.name: kind_of(f.type) for f in schema}
        add_histograms(columns, raw.sample, rows, kinds)
        return Converted(schema, rows, raw, columns, parquet_sha256.result())


def _parquet_writer(path: Path, schema: pa.Schema, first: pa.RecordBatch) -> pq.ParquetWriter:
    """Snappy pages; dictionary encoding only for the columns with few distinct values in the
    first batch (on a column of mostly distinct values it costs a third of the write time for a
    larger file, measured on the benchmark's CSV). Judged on the first `DICTIONARY_PROBE_ROWS` rows:
    counting distinct values costs a hash table as large as the column's distinct values."""
    probe = first.slice(0, DICTIONARY_PROBE_ROWS)
    few = [
        field.name
        for field, column in zip(schema, probe.columns, strict=True)
        if not pa.types.is_null(field.type) and pc.count_distinct(column).as_py() <= probe.num_rows // 10
    ]
    return pq.ParquetWriter(str(path), schema, compression="snappy", use_dictionary=few)


def _explain(exc: InvalidArgument, schema: pa.Schema | None, source: BatchSource, overrides: dict) -> None:
    """Raise a better error (or a request to widen a column) for `exc` where one can be had."""
    if "ragged row" in exc.message and "line " not in exc.message:
        _ragged_line(source, overrides)
    match = CONVERSION_ERROR.search(exc.message)
    if not match or schema is None:
        return
    index, target = int(match.group(1)), match.group(2)
    name = schema.names[index]
    if target == "string":  # strings fail to convert only on invalid UTF-8
        raise InvalidArgument(
            "file",
            f"invalid UTF-8 in column '{name}' at "
            f"{formats.find_invalid_utf8(source.path, source.detected, index)}",
        ) from None
    raise _Widen(name, _WIDER.get(target, pa.string()))


def _ragged_line(source: BatchSource, overrides: dict) -> None:
    """Re-read single-threaded, where pyarrow reports the row number of a ragged row."""
    _, batches = source.open(overrides, use_threads=False)
    for _ in batches:
        pass


def _check_utf8(batch: pa.RecordBatch, source: BatchSource) -> None:
    """CSV type inference turns a column with invalid UTF-8 into binary: refuse it, naming it."""
    for index, field in enumerate(batch.schema):
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            if source.detected.format == DataFormat.PARQUET:
                raise InvalidArgument("file", f"column '{field.name}' holds binary data, not text")
            where = formats.find_invalid_utf8(source.path, source.detected, index)
            raise InvalidArgument("file", f"invalid UTF-8 in column '{field.name}' at {where}")
