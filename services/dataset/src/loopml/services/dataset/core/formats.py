"""Format detection and streaming readers: a file on local disk -> Arrow record batches.

Every failure to read becomes `InvalidArgument` naming the line or column where one is known.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from loopml.runtime.errors import InvalidArgument
from loopml.services.dataset.core.model import Compression, CsvOptions, DataFormat

DEFAULT_NULLS = ["", "NA", "N/A", "NaN", "null", "NULL"]
_EXTENSIONS = {
    ".csv": DataFormat.CSV,
    ".tsv": DataFormat.TSV,
    ".tab": DataFormat.TSV,
    ".parquet": DataFormat.PARQUET,
    ".pq": DataFormat.PARQUET,
    ".jsonl": DataFormat.JSONL,
    ".ndjson": DataFormat.JSONL,
    ".json": DataFormat.JSONL,
}
_KNOWN_BINARY = {
    b"PK\x03\x04": "a ZIP/XLSX archive",
    b"\xd0\xcf\x11\xe0": "an XLS document",
    b"%PDF": "a PDF document",
}
DEFAULT_BLOCK_BYTES = 4 << 20


@dataclass(frozen=True)
class Detected:
    format: DataFormat
    compression: Compression


def detect(
    path: Path, filename: str, fmt: DataFormat | None, compression: Compression | None, prefix: str
) -> Detected:
    """The format and compression of the file at `path`, checking what the uploader claimed
    (`prefix` is where the request carries format and compression, e.g. "header.")."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if not head.strip():
        raise InvalidArgument("file", "is empty")
    gz = head[:2] == b"\x1f\x8b"
    if compression == Compression.GZIP and not gz:
        raise InvalidArgument(f"{prefix}compression", "says gzip but the bytes are not a gzip stream")
    if compression == Compression.NONE and gz:
        raise InvalidArgument(f"{prefix}compression", "says none but the bytes are a gzip stream")
    compression = Compression.GZIP if gz else Compression.NONE
    if gz:
        try:
            with gzip.open(path, "rb") as f:
                head = f.read(4096)
        except (OSError, EOFError) as exc:
            raise InvalidArgument("file", f"truncated or corrupt gzip stream: {exc}") from None
        if not head.strip():
            raise InvalidArgument("file", "is empty (after gzip decompression)")
    sniffed = _sniff(head)
    name = filename.lower().removesuffix(".gz")
    by_name = next((f for ext, f in _EXTENSIONS.items() if name.endswith(ext)), None)
    if fmt is None:
        if sniffed is None:
            raise InvalidArgument(f"{prefix}format", f"unsupported format: {_describe_binary(head)}")
        fmt = sniffed if sniffed in (DataFormat.PARQUET, DataFormat.JSONL) or by_name is None else by_name
        if by_name is not None and by_name != fmt and sniffed in (DataFormat.PARQUET, DataFormat.JSONL):
            fmt = sniffed
    elif sniffed != fmt and not (
        sniffed in (DataFormat.CSV, DataFormat.TSV) and fmt in (DataFormat.CSV, DataFormat.TSV)
    ):
        what = sniffed.value if sniffed else _describe_binary(head)
        raise InvalidArgument(f"{prefix}format", f"says {fmt.value} but the content looks like {what}")
    return Detected(fmt, compression)


def _sniff(head: bytes) -> DataFormat | None:
    if head.startswith(b"PAR1"):
        return DataFormat.PARQUET
    if b"\x00" in head or any(head.startswith(m) for m in _KNOWN_BINARY):
        return None
    first = head.lstrip()[:1]
    if first in (b"{",):
        return DataFormat.JSONL
    line = head.split(b"\n", 1)[0]
    if line.count(b"\t") > line.count(b","):
        return DataFormat.TSV
    return DataFormat.CSV


def _describe_binary(head: bytes) -> str:
    for magic, what in _KNOWN_BINARY.items():
        if head.startswith(magic):
            return what
    if head.startswith(b"PAR1"):
        return "parquet"
    return "binary data that is not CSV, TSV, Parquet or JSON Lines"


# -- readers --------------------------------------------------------------------------------------


class BatchSource:
    """Opens a fresh stream of record batches (conversion may restart it with wider column types)."""

    def __init__(
        self, path: Path, detected: Detected, csv: CsvOptions, block_size: int = DEFAULT_BLOCK_BYTES
    ):
        self.path, self.detected, self.csv, self.block_size = path, detected, csv, block_size

    def open(self, column_types: dict[str, pa.DataType] | None = None, *, use_threads: bool = True):
        """(schema, batches). Batches raise InvalidArgument on bad content."""
        fmt = self.detected.format
        if fmt == DataFormat.PARQUET:
            return self._parquet()
        stream = self._input_stream()
        try:
            if fmt == DataFormat.JSONL:
                reader = pajson.open_json(stream, read_options=pajson.ReadOptions(block_size=self.block_size))
            else:
                reader = self._csv_reader(stream, column_types, use_threads)
        except (pa.ArrowInvalid, OSError, EOFError) as exc:
            stream.close()
            raise translate(exc, None) from None
        return reader.schema, _guarded(reader, stream)

    def _input_stream(self) -> pa.NativeFile:
        compression = "gzip" if self.detected.compression == Compression.GZIP else None
        return pa.input_stream(str(self.path), compression=compression)

    def _csv_reader(self, stream, column_types, use_threads: bool):
        parse, convert = self.csv_options(column_types)
        names = self._headerless_names(parse) if self.csv.no_header else None
        read = pacsv.ReadOptions(block_size=self.block_size, use_threads=use_threads, column_names=names)
        return pacsv.open_csv(stream, read_options=read, parse_options=parse, convert_options=convert)

    def csv_options(self, column_types) -> tuple[pacsv.ParseOptions, pacsv.ConvertOptions]:
        """How CSV and TSV text is split and converted (quoted values may hold line ends)."""
        delimiter = self.csv.delimiter or ("\t" if self.detected.format == DataFormat.TSV else ",")
        parse = pacsv.ParseOptions(
            delimiter=delimiter, quote_char=self.csv.quote_char or '"', newlines_in_values=True
        )
        convert = pacsv.ConvertOptions(
            null_values=list(self.csv.null_values) or DEFAULT_NULLS,
            strings_can_be_null=True,
            column_types=column_types or {},
        )
        return parse, convert

    def _headerless_names(self, parse: pacsv.ParseOptions) -> list[str]:
        """c0, c1, ... for a file without a header row (counted on its first row)."""
        compression = "gzip" if self.detected.compression == Compression.GZIP else None
        with pa.input_stream(str(self.path), compression=compression) as stream:
            first = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(block_size=1 << 16, autogenerate_column_names=True),
                parse_options=parse,
            )
            return [f"c{i}" for i in range(len(first.schema))]

    def _parquet(self):
        try:
            if self.detected.compression == Compression.GZIP:
                raise InvalidArgument(
                    "file", "gzip-compressed Parquet is not supported: Parquet compresses itself"
                )
            file = pq.ParquetFile(str(self.path))
        except (pa.ArrowInvalid, OSError) as exc:
            raise InvalidArgument("file", f"not a valid Parquet file: {exc}") from None
        schema = file.schema_arrow
        return schema, _guarded(file.iter_batches(batch_size=65536), None)


def _guarded(reader, stream) -> Iterator[pa.RecordBatch]:
    rows = 0
    try:
        for batch in reader:
            yield batch
            rows += batch.num_rows
    except (pa.ArrowInvalid, OSError, EOFError) as exc:
        raise translate(exc, rows) from None
    finally:
        if stream is not None:
            stream.close()


_ROW = re.compile(r"Row #(\d+)")
_COLUMN = re.compile(r"column #(\d+)")


def translate(exc: Exception, rows_before: int | None) -> InvalidArgument:
    text = str(exc)
    lowered = text.lower()
    if (
        "gzip" in lowered
        or isinstance(exc, EOFError)
        or "decompress" in lowered
        or "compressed stream" in lowered
    ):
        return InvalidArgument("file", f"truncated or corrupt gzip stream: {text}")
    if text.startswith("Empty CSV file"):
        return InvalidArgument("file", "is empty")
    row = _ROW.search(text)
    if "Expected" in text and "columns" in text:
        where = f"line {row.group(1)}" if row else "a row"
        return InvalidArgument("file", f"{where}: ragged row: {text.split(': ', 1)[-1]}")
    if "UTF8" in text or "utf8" in text or "UTF-8" in text:
        return InvalidArgument("file", f"invalid UTF-8: {text}")
    if "JSON" in text:
        return InvalidArgument("file", f"invalid JSON Lines: {text}")
    return InvalidArgument("file", text)


CONVERSION_ERROR = re.compile(r"In CSV column #(\d+): .*conversion error to (\w+)")


def _supported(arrow_type: pa.DataType) -> bool:
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    return any(
        check(arrow_type)
        for check in (
            pa.types.is_integer,
            pa.types.is_floating,
            pa.types.is_decimal,
            pa.types.is_boolean,
            pa.types.is_string,
            pa.types.is_large_string,
            pa.types.is_timestamp,
            pa.types.is_date,
            pa.types.is_null,
            pa.types.is_binary,
            pa.types.is_large_binary,
        )
    )


def check_names(schema: pa.Schema) -> None:
    """Column names must be unique and non-empty; values must be flat scalars."""
    seen: dict[str, int] = {}
    for index, name in enumerate(schema.names):
        if not name.strip():
            raise InvalidArgument("file", f"column {index + 1} of the header has an empty name")
        if name in seen:
            raise InvalidArgument(
                "file", f"column name '{name}' appears twice (columns {seen[name] + 1} and {index + 1})"
            )
        seen[name] = index
    for field in schema:
        if not _supported(field.type):
            raise InvalidArgument(
                "file",
                f"column '{field.name}' holds {field.type} values: only flat columns of numbers, "
                "booleans, strings and dates are supported (flatten nested JSON first)",
            )


def find_invalid_utf8(path: Path, detected: Detected, column_index: int) -> str:
    """Where the first invalid UTF-8 is in `column_index` (rare path: scans the text lines)."""
    opener = gzip.open if detected.compression == Compression.GZIP else open
    with opener(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return f"line {number}"
    return "a row"
