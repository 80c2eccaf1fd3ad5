"""The dataset service's domain core: ingest, versions, schema and roles, profiles, previews, splits.

No grpc and no protobuf here: the servicer translates requests into these calls.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from loopml.runtime.errors import (
    AlreadyExists,
    Cancelled,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)
from loopml.runtime.objectstore import ObjectStore
from loopml.services.dataset.core import formats, schema, splits
from loopml.services.dataset.core.formats import BatchSource
from loopml.services.dataset.core.ingest import Converted, convert, spool
from loopml.services.dataset.core.lineage import LineageChecker, NoLineage
from loopml.services.dataset.core.model import (
    PART_CODES,
    Column,
    ColumnRole,
    ColumnType,
    Compression,
    DataFormat,
    Dataset,
    DatasetVersion,
    IngestOptions,
    Split,
    SplitPart,
    SplitSpec,
    SplitStrategy,
    TaskType,
)
from loopml.services.dataset.core.profile import Profiler, add_histograms, kind_of, sample_rows
from loopml.services.dataset.repository import Repository, decode_token, encode_token

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
KEY_ROOT = "datasets"
_EXTENSIONS = {
    DataFormat.CSV: "csv",
    DataFormat.TSV: "tsv",
    DataFormat.PARQUET: "parquet",
    DataFormat.JSONL: "jsonl",
}
MAX_PREVIEW_ROWS = 1000
MAX_SAMPLE_ROWS = 10_000
DOWNLOAD_CHUNK = 1 << 20


@dataclass(frozen=True)
class Limits:
    max_upload_bytes: int
    spool_dir: str | None = None
    #: Bytes the readers parse at a time (types are inferred from the first block).
    read_block_bytes: int = 4 << 20


@dataclass
class Preview:
    columns: list[Column]
    table: pa.Table
    total_rows: int
    next_page_token: str


@dataclass
class Download:
    dataset_id: str
    version: int
    canonical: bool
    format: DataFormat
    compression: Compression
    filename: str
    size: int
    sha256: str
    chunks: Iterator[bytes]


def validate_name(name: str, field: str) -> str:
    if not name:
        raise InvalidArgument(field, "is required")
    if not NAME.match(name):
        raise InvalidArgument(field, f"{name!r} does not match [A-Za-z0-9][A-Za-z0-9._-]{{0,127}}")
    return name


class DatasetCore:
    def __init__(
        self,
        repository: Repository,
        store: ObjectStore,
        limits: Limits,
        lineage: LineageChecker | None = None,
    ):
        self.repo, self.store, self.limits = repository, store, limits
        self.lineage = lineage or NoLineage()

    # -- ingest --------------------------------------------------------------------------------------
    @contextmanager
    def _workdir(self):
        path = Path(tempfile.mkdtemp(prefix="loopml-dataset-", dir=self.limits.spool_dir))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def upload(
        self, options: IngestOptions, chunks: Iterable[bytes], still_wanted: Callable[[], bool] = lambda: True
    ) -> tuple[Dataset, DatasetVersion, bool]:
        """Spool, check, convert, profile and store one upload. On any failure nothing is left.

        `still_wanted` is asked once more before anything is stored: a client that went away
        while its file was being converted gets nothing stored either."""
        validate_name(options.name, "header.name")
        if options.size_bytes > self.limits.max_upload_bytes:
            raise ResourceExhausted(
                f"header.size_bytes {options.size_bytes} is over the upload limit of "
                f"{self.limits.max_upload_bytes} bytes"
            )
        with self._workdir() as work:
            spooled = spool(
                chunks, work / "original", limit=self.limits.max_upload_bytes, expected_sha256=options.sha256
            )
            existing = self.repo.find_by_sha(options.name, spooled.sha256)
            if existing is not None:
                return (*existing, False)
            return self._ingest(
                options, work, spooled.path, spooled.size, spooled.sha256, "upload", None, still_wanted
            )

    def import_object(self, options: IngestOptions, uri: str) -> tuple[Dataset, DatasetVersion, bool]:
        validate_name(options.name, "name")
        if not uri:
            raise InvalidArgument("uri", "is required")
        key = self.store.key_from_uri(uri)
        info = self.store.register_existing(key, expected_sha256=options.sha256 or None)
        if info.size > self.limits.max_upload_bytes:
            raise ResourceExhausted(
                f"object {uri} is {info.size} bytes, over the limit of {self.limits.max_upload_bytes}"
            )
        existing = self.repo.find_by_sha(options.name, info.sha256)
        if existing is not None:
            return (*existing, False)
        with self._workdir() as work:
            path = work / "original"
            with open(path, "wb") as out:
                for chunk in self.store.get(key):
                    out.write(chunk)
            return self._ingest(options, work, path, info.size, info.sha256, "import", key, lambda: True)

    def _ingest(
        self,
        options: IngestOptions,
        work: Path,
        path: Path,
        size: int,
        sha: str,
        source: str,
        original_key: str | None,
        still_wanted: Callable[[], bool],
    ):
        prefix = "header." if source == "upload" else ""  # where the request's fields live
        detected = formats.detect(path, options.filename, options.format, options.compression, prefix)
        key_prefix = f"{KEY_ROOT}/{uuid.uuid4().hex}"
        ext = _EXTENSIONS[detected.format] + (".gz" if detected.compression == Compression.GZIP else "")
        # Store the original bytes while the conversion runs (I/O beside CPU); undone on failure.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dataset-store") as pool:
            stored_original = None
            if original_key is None:
                stored_original = pool.submit(self._put_file, f"{key_prefix}/original.{ext}", path, sha)
            try:
                converted = convert(
                    BatchSource(path, detected, options.csv, self.limits.read_block_bytes),
                    work / "canonical.parquet",
                )
                columns = schema.infer_columns(converted.raw, converted.schema)
                if options.label_column:
                    label = next((c for c in columns if c.name == options.label_column), None)
                    if label is None:
                        raise InvalidArgument(
                            f"{prefix}label_column",
                            f"column '{options.label_column}' is not in the file "
                            f"(columns: {', '.join(converted.schema.names)})",
                        )
                    label.role_override = ColumnRole.LABEL
                profile, task = self._profile(converted, columns, size)
                if not still_wanted():
                    raise Cancelled("the client cancelled the upload; nothing was stored")
                if stored_original is not None:
                    original_key = stored_original.result().key
                canonical = self._put_file(
                    f"{key_prefix}/canonical.parquet",
                    work / "canonical.parquet",
                    _sha256(work / "canonical.parquet"),
                )
                version = DatasetVersion(
                    dataset_id="",
                    version=0,
                    source=source,
                    filename=options.filename,
                    format=detected.format,
                    compression=detected.compression,
                    original_key=original_key,
                    original_uri=self.store.uri(original_key),
                    canonical_key=canonical.key,
                    canonical_uri=canonical.uri,
                    key_prefix=key_prefix,
                    sha256=sha,
                    size_bytes=size,
                    row_count=converted.rows,
                    columns=columns,
                    task=task,
                    profile=profile,
                    splits=[],
                    create_time=datetime.now(UTC),
                    created_by=options.created_by,
                )
                dataset, stored, created = self.repo.add_version(
                    options.name, options.description, options.tags, options.created_by, version
                )
            except BaseException:
                if stored_original is not None:
                    wait([stored_original])
                self.store.delete_prefix(key_prefix + "/")
                raise
        if not created:  # an identical upload won the race: drop our copy
            self.store.delete_prefix(key_prefix + "/")
        return dataset, stored, created

    def _put_file(self, key: str, path: Path, sha: str | None):
        with open(path, "rb") as f:
            return self.store.put(key, f, expected_sha256=sha)

    def _profile(self, converted: Converted, columns: list[Column], size: int) -> tuple[dict, object]:
        profile = {
            "row_count": converted.rows,
            "column_count": len(columns),
            "size_bytes": size,
            "duplicate_row_count": converted.raw.duplicates,
            "columns": converted.columns,
            "create_time": datetime.now(UTC).timestamp(),
        }
        return self._finish_profile(profile, columns, converted.raw.sample)

    def _finish_profile(self, profile: dict, columns: list[Column], sample: pa.Table):
        by_name = {c["name"]: c for c in profile["columns"]}
        for column in columns:
            by_name[column.name]["type"] = column.type.value
        label = next((c for c in columns if c.role == ColumnRole.LABEL), None)
        task = schema.infer_task(label, by_name[label.name]) if label else None
        profile["warnings"] = schema.warnings_for(profile, columns, sample, task)
        return profile, task

    # -- reading -------------------------------------------------------------------------------------
    def get(self, dataset_id: str = "", name: str = "", version: int = 0) -> tuple[Dataset, DatasetVersion]:
        if not dataset_id and not name:
            raise InvalidArgument("dataset_id", "give the dataset's id or its name")
        return self.repo.get(dataset_id, name, version)

    def list(
        self,
        page_size: int,
        page_token: str,
        name_prefix: str = "",
        tags: dict | None = None,
        order_by: str = "",
    ):
        size = _page_size(page_size)
        offset = decode_token(page_token)
        items, more = self.repo.list_datasets(size, offset, name_prefix, tags or {}, order_by)
        return items, encode_token(offset + size) if more else ""

    def list_versions(self, dataset_id: str, page_size: int, page_token: str):
        if not dataset_id:
            raise InvalidArgument("dataset_id", "is required")
        size = _page_size(page_size)
        offset = decode_token(page_token)
        items, more = self.repo.list_versions(dataset_id, size, offset)
        return items, encode_token(offset + size) if more else ""

    def _version(self, dataset_id: str, version: int) -> DatasetVersion:
        if not dataset_id:
            raise InvalidArgument("dataset.dataset_id", "is required")
        return self.repo.get(dataset_id, "", version)[1]

    def profile(
        self, dataset_id: str, version: int, split_id: str = "", part: SplitPart | None = None
    ) -> dict:
        v = self._version(dataset_id, version)
        if not split_id:
            return {
                **v.profile,
                "dataset_id": v.dataset_id,
                "version": v.version,
                "split_id": "",
                "part": None,
            }
        codes, split = self._split_codes(v, split_id, part)
        with self._workdir() as work:
            table_path = self._canonical_local(v, work)
            file = pq.ParquetFile(str(table_path))
            profiler = Profiler(file.schema_arrow)
            rows_seen = 0
            for batch in file.iter_batches(batch_size=262144):
                mask = codes[rows_seen : rows_seen + batch.num_rows] == PART_CODES[part]
                rows_seen += batch.num_rows
                profiler.add(batch.filter(pa.array(mask)))
            raw = profiler.finish()
            cols = [raw.column_dict(s) for s in raw.columns]
            kinds = {f.name: kind_of(f.type) for f in file.schema_arrow}
            add_histograms(cols, raw.sample, raw.rows, kinds)
        prof = {
            "row_count": raw.rows,
            "column_count": len(v.columns),
            "size_bytes": v.size_bytes,
            "duplicate_row_count": raw.duplicates,
            "columns": cols,
            "create_time": datetime.now(UTC).timestamp(),
        }
        prof, _ = self._finish_profile(prof, v.columns, raw.sample)
        return {
            **prof,
            "dataset_id": v.dataset_id,
            "version": v.version,
            "split_id": split.split_id,
            "part": part,
        }

    def _canonical_local(self, v: DatasetVersion, work: Path) -> Path:
        path = work / "canonical.parquet"
        with open(path, "wb") as out:
            for chunk in self.store.get(v.canonical_key):
                out.write(chunk)
        return path

    def _split_codes(
        self, v: DatasetVersion, split_id: str, part: SplitPart | None
    ) -> tuple[np.ndarray, Split]:
        split = next((s for s in v.splits if s.split_id == split_id), None)
        if split is None:
            raise NotFound("split", split_id)
        if part is None:
            raise InvalidArgument("part", "is required when split_id is set")
        table = pq.read_table(pa.BufferReader(self.store.read_bytes(split.key)))
        return table.column("part").to_numpy(), split

    def preview(
        self,
        dataset_id: str,
        version: int,
        *,
        sample: bool,
        seed: int,
        columns: list[str],
        split_id: str,
        part: SplitPart | None,
        page_size: int,
        page_token: str,
    ) -> Preview:
        v = self._version(dataset_id, version)
        for name in columns:
            if v.column(name) is None:
                raise InvalidArgument("columns", f"unknown column '{name}'")
        if page_size < 0 or page_size > MAX_PREVIEW_ROWS:
            raise InvalidArgument("page_size", f"must be between 0 and {MAX_PREVIEW_ROWS}")
        size = page_size or 20
        offset = decode_token(page_token)
        names = columns or [c.name for c in v.columns]
        rows = np.arange(v.row_count)
        if split_id:
            codes, _ = self._split_codes(v, split_id, part)
            rows = np.flatnonzero(codes == PART_CODES[part])
        total = len(rows)
        if sample:
            rng = np.random.default_rng(seed)
            rows = (
                np.sort(rows[rng.choice(total, size=min(total, MAX_SAMPLE_ROWS), replace=False)])
                if total
                else rows
            )
            rows = rows[np.random.default_rng(seed).permutation(len(rows))]
        picked = rows[offset : offset + size]
        table = self._take(v, picked, names)
        more = offset + size < len(rows)
        chosen = [v.column(n) for n in names]
        return Preview(chosen, table, total, encode_token(offset + size) if more else "")

    def _take(self, v: DatasetVersion, rows: np.ndarray, names: list[str]) -> pa.Table:
        """The given rows (in that order) of the canonical copy, streaming over its row groups."""
        with self._workdir() as work:
            file = pq.ParquetFile(str(self._canonical_local(v, work)))
            wanted = np.sort(rows)
            parts, start = [], 0
            for batch in file.iter_batches(batch_size=65536, columns=names):
                end = start + batch.num_rows
                lo, hi = np.searchsorted(wanted, [start, end])
                if hi > lo:
                    parts.append(batch.take(pa.array(wanted[lo:hi] - start)))
                start = end
                if hi == len(wanted):
                    break
            wanted_schema = pa.schema([file.schema_arrow.field(n) for n in names])
            table = pa.Table.from_batches(parts, schema=wanted_schema)
        position = {r: i for i, r in enumerate(wanted.tolist())}
        return (
            table.take(pa.array([position[r] for r in rows.tolist()], type=pa.int64()))
            if len(rows)
            else table
        )

    # -- roles ---------------------------------------------------------------------------------------
    def update_columns(
        self,
        dataset_id: str,
        version: int,
        updates: list[tuple[str, ColumnRole | None, ColumnType | None, bool]],
    ) -> DatasetVersion:
        v = self._version(dataset_id, version)
        columns = [replace(c) for c in v.columns]
        by_name = {c.name: c for c in columns}
        for i, (name, role, col_type, reset) in enumerate(updates):
            column = by_name.get(name)
            if column is None:
                raise InvalidArgument(f"updates[{i}].column", f"unknown column '{name}'")
            if reset:
                column.role_override = column.type_override = None
            if role is not None:
                if role == ColumnRole.LABEL:
                    for other in columns:  # one label: the previous one goes back to a feature
                        if other.role == ColumnRole.LABEL and other.name != name:
                            other.role_override = ColumnRole.FEATURE
                column.role_override = role
            if col_type is not None:
                self._check_type(column, col_type, v.profile, f"updates[{i}].type")
                column.type_override = col_type
        labels = [c.name for c in columns if c.role == ColumnRole.LABEL]
        if len(labels) > 1:
            raise InvalidArgument("updates", f"more than one label column: {', '.join(labels)}")
        profile = json.loads(json.dumps(v.profile))
        sample = self._sample_for_warnings(v, columns)
        profile, task = self._finish_profile(profile, columns, sample)
        return self.repo.update_schema(v.dataset_id, v.version, columns, task, profile)

    @staticmethod
    def _check_type(column: Column, col_type: ColumnType, profile: dict, field: str) -> None:
        kind = column.physical_type
        numeric_ok = any(kind.startswith(t) for t in ("int", "uint", "double", "float", "bool", "decimal"))
        if col_type in (ColumnType.NUMERIC, ColumnType.INTEGER) and not numeric_ok:
            raise InvalidArgument(
                field, f"column '{column.name}' holds {kind} values, which cannot be {col_type.value}"
            )
        if col_type == ColumnType.INTEGER and kind.startswith(("double", "float")):
            raise InvalidArgument(
                field, f"column '{column.name}' holds real numbers, which cannot be integer"
            )
        if col_type == ColumnType.DATETIME and not kind.startswith(("timestamp", "date")):
            raise InvalidArgument(
                field, f"column '{column.name}' holds {kind} values, which cannot be datetime"
            )
        if col_type == ColumnType.BOOLEAN:
            distinct = next(c["distinct"] for c in profile["columns"] if c["name"] == column.name)
            if distinct > 2:
                raise InvalidArgument(
                    field, f"column '{column.name}' has {distinct} distinct values, a boolean has at most 2"
                )

    def _sample_for_warnings(self, v: DatasetVersion, columns: list[Column]) -> pa.Table:
        """A row sample for the label-leak check: up to 50 000 rows read from the canonical copy."""
        with self._workdir() as work:
            file = pq.ParquetFile(str(self._canonical_local(v, work)))
            return sample_rows(file.schema_arrow, file.iter_batches(batch_size=65536))

    # -- splits --------------------------------------------------------------------------------------
    def create_split(self, dataset_id: str, version: int, spec: SplitSpec, name: str) -> tuple[Split, bool]:
        splits.check_ratios(spec)
        if name:
            validate_name(name, "name")
        v = self._version(dataset_id, version)
        label = v.label
        if spec.strategy == SplitStrategy.AUTO:
            classify = v.task is not None and v.task.task != TaskType.REGRESSION
            spec = replace(spec, strategy=SplitStrategy.STRATIFIED if classify else SplitStrategy.RANDOM)
        column_name, field = "", ""
        if spec.strategy == SplitStrategy.STRATIFIED:
            column_name, field = spec.stratify_column or label, "spec.stratify_column"
            if not column_name:
                raise InvalidArgument(field, "is required: the version has no label column to stratify by")
            spec = replace(spec, stratify_column=column_name)
        elif spec.strategy == SplitStrategy.GROUP:
            column_name, field = spec.group_column, "spec.group_column"
            if not column_name:
                raise InvalidArgument(field, "is required for a group split")
        elif spec.strategy == SplitStrategy.TIME:
            column_name = spec.time_column or next(
                (c.name for c in v.columns if c.role == ColumnRole.TIME), ""
            )
            field = "spec.time_column"
            if not column_name:
                raise InvalidArgument(field, "is required: no column has role TIME")
            spec = replace(spec, time_column=column_name)
        if column_name and v.column(column_name) is None:
            raise InvalidArgument(field, f"unknown column '{column_name}'")
        same_spec, same_name = self.repo.find_split(v.dataset_id, v.version, spec, name)
        if same_spec is not None and (not name or same_spec.name == name):
            return same_spec, False
        if same_name is not None:
            raise AlreadyExists("split", name, f"split {name!r} exists with a different spec")
        column = None
        if column_name:
            with self._workdir() as work:
                column = pq.read_table(str(self._canonical_local(v, work)), columns=[column_name]).column(0)
        codes = splits.assign(spec, column, v.row_count)
        counts = splits.check_not_empty(codes, spec)
        split_id = uuid.uuid4().hex
        key = f"{v.key_prefix}/splits/{split_id}.parquet"
        sink = pa.BufferOutputStream()
        pq.write_table(pa.table({"part": pa.array(codes, type=pa.int8())}), sink, compression="zstd")
        self.store.put(key, sink.getvalue().to_pybytes())
        split = Split(split_id, name, v.dataset_id, v.version, spec, *counts, datetime.now(UTC), key)
        try:
            return self.repo.add_split(v.dataset_id, v.version, split), True
        except BaseException:
            self.store.delete(key)
            raise

    # -- download ------------------------------------------------------------------------------------
    def download(
        self, dataset_id: str, version: int, canonical: bool | None, split_id: str, part: SplitPart | None
    ) -> Download:
        v = self._version(dataset_id, version)
        if split_id and canonical is False:
            raise InvalidArgument("form", "a split part can only be downloaded in the canonical form")
        stem = v.filename.rsplit(".", 2)[0] if v.filename else f"dataset-{v.version}"
        if not split_id and not canonical:
            info = self.store.stat(v.original_key)
            return Download(
                v.dataset_id,
                v.version,
                False,
                v.format,
                v.compression,
                v.filename or Path(v.original_key).name,
                info.size,
                v.sha256,
                self.store.get(v.original_key, chunk_size=DOWNLOAD_CHUNK),
            )
        if not split_id:
            info = self.store.stat(v.canonical_key)
            return Download(
                v.dataset_id,
                v.version,
                True,
                DataFormat.PARQUET,
                Compression.NONE,
                f"{stem}.parquet",
                info.size,
                info.sha256 or "",
                self.store.get(v.canonical_key, chunk_size=DOWNLOAD_CHUNK),
            )
        codes, split = self._split_codes(v, split_id, part)
        return self._part_download(v, codes, part, f"{stem}-{part.value}.parquet")

    def _part_download(
        self, v: DatasetVersion, codes: np.ndarray, part: SplitPart, filename: str
    ) -> Download:
        """Write the part's rows to a temporary Parquet file (its size and digest go in the
        header), then stream it; the file goes when the stream ends or is abandoned."""
        work = Path(tempfile.mkdtemp(prefix="loopml-dataset-", dir=self.limits.spool_dir))
        try:
            file = pq.ParquetFile(str(self._canonical_local(v, work)))
            out = work / "part.parquet"
            with pq.ParquetWriter(str(out), file.schema_arrow, compression="zstd") as writer:
                start = 0
                for batch in file.iter_batches(batch_size=262144):
                    mask = codes[start : start + batch.num_rows] == PART_CODES[part]
                    start += batch.num_rows
                    writer.write_batch(batch.filter(pa.array(mask)))
            digest, size = _sha256(out), out.stat().st_size
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise

        def chunks():
            try:
                with open(out, "rb") as f:
                    yield from iter(lambda: f.read(DOWNLOAD_CHUNK), b"")
            finally:
                shutil.rmtree(work, ignore_errors=True)

        return Download(
            v.dataset_id,
            v.version,
            True,
            DataFormat.PARQUET,
            Compression.NONE,
            filename,
            size,
            digest,
            chunks(),
        )

    # -- delete --------------------------------------------------------------------------------------
    def delete(self, dataset_id: str, version: int, force: bool) -> tuple[list[int], int]:
        if not dataset_id:
            raise InvalidArgument("dataset_id", "is required")
        if version:
            self.repo.get(dataset_id, "", version)  # NotFound before asking the registry
        else:
            self.repo.get(dataset_id)
        if not force:
            users = self.lineage.models_using(dataset_id, version)
            if users:
                what = f"version {version}" if version else "the dataset"
                raise FailedPrecondition(
                    f"{what} is the training data of registered model versions {', '.join(users[:10])}; "
                    "pass force to delete anyway",
                    subject=f"dataset/{dataset_id}",
                    violation_type="IN_USE",
                )
        gone = self.repo.delete(dataset_id, version)
        removed = 0
        for v in gone:
            removed += self.store.delete_prefix(v.key_prefix + "/")
        return [v.version for v in gone], removed


def _sha256(path: Path) -> str:
    """Known up front, the digest lets the S3 store upload in place instead of upload-then-copy."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(DOWNLOAD_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _page_size(page_size: int) -> int:
    if page_size < 0 or page_size > 1000:
        raise InvalidArgument("page_size", "must be between 0 and 1000")
    return page_size or 50
