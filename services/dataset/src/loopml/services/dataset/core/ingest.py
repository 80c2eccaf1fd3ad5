"""Turning uploaded bytes into a canonical Parquet file and a profile, in bounded memory.

`spool` writes the incoming chunks to a temporary file while hashing them and enforcing the size
limit; `convert` streams that file batch by batch through the reader, a ParquetWriter and the
profiler (one pass), then a second cheap pass over the Parquet copy adds exact histograms.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from loopml.runtime.errors import InvalidArgument, ResourceExhausted
from loopml.services.dataset.core import formats
from loopml.services.dataset.core.formats import CONVERSION_ERROR, BatchSource
from loopml.services.dataset.core.model import DataFormat
from loopml.services.dataset.core.profile import Profiler, RawProfile, add_histograms, kind_of

_WIDER = {"int64": pa.float64(), "double": pa.string(), "bool": pa.string()}


@dataclass
class Spooled:
    path: Path
    size: int
    sha256: str


def spool(chunks: Iterable[bytes], path: Path, *, limit: int, expected_sha256: str = "") -> Spooled:
    digest, size = hashlib.sha256(), 0
    with open(path, "wb") as out:
        for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise ResourceExhausted(f"file is larger than the upload limit of {limit} bytes")
            digest.update(chunk)
            out.write(chunk)
    sha = digest.hexdigest()
    if expected_sha256 and expected_sha256.lower() != sha:
        raise InvalidArgument("header.sha256", f"does not match the bytes received (sha256 {sha})")
    return Spooled(path, size, sha)


@dataclass
class Converted:
    schema: pa.Schema
    rows: int
    raw: RawProfile
    columns: list[dict]  # per-column stored profile entries (histograms added)


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
    writer = pq.ParquetWriter(str(out_path), schema, compression="snappy")
    rows = 0
    try:
        try:
            for batch in batches:
                _check_utf8(batch, source)
                writer.write_batch(batch)
                profiler.add(batch)
                rows += batch.num_rows
        except InvalidArgument as exc:
            _explain(exc, schema, source, overrides)
            raise
    finally:
        writer.close()
    if rows == 0:
        raise InvalidArgument("file", "has a header but no data rows (line 2 is missing)")
    raw = profiler.finish()
    columns = [raw.column_dict(s) for s in raw.columns]
    kinds = {f.name: kind_of(f.type) for f in schema}
    add_histograms(columns, raw.sample, rows, kinds)
    return Converted(schema, rows, raw, columns)


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
