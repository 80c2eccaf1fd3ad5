"""The dataset service's domain core: versions, schema and roles, profiles, previews, splits,
downloads and deletes; uploads and imports are `uploads.Uploads`.

No grpc and no protobuf here: the servicer translates requests into these calls.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from loopml.runtime.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from loopml.runtime.objectstore import ObjectStore
from loopml.services.dataset.core import schema, splits
from loopml.services.dataset.core.ingest import file_sha256, scratch_dir
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
from loopml.services.dataset.core.uploads import Limits, Uploads, validate_name
from loopml.services.dataset.repository import Repository, decode_token, encode_token

MAX_PREVIEW_ROWS = 1000
MAX_SAMPLE_ROWS = 10_000
DOWNLOAD_CHUNK = 1 << 20


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
        self._uploads = Uploads(repository, store, limits)

    # -- ingest --------------------------------------------------------------------------------------
    def upload(
        self, options: IngestOptions, chunks: Iterable[bytes], still_wanted: Callable[[], bool] = lambda: True
    ) -> tuple[Dataset, DatasetVersion, bool]:
        return self._uploads.upload(options, chunks, still_wanted)

    def import_object(self, options: IngestOptions, uri: str) -> tuple[Dataset, DatasetVersion, bool]:
        return self._uploads.import_object(options, uri)

    def _workdir(self):
        return scratch_dir(self.limits.spool_dir)

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
        split = self._find_split(v, split_id, part)
        prof = self.repo.split_profile(v.dataset_id, v.version, split.split_id, part.value)
        if prof is None:  # a split stored before part profiles were
            prof = self._part_profiles(v, self._split_codes(v, split_id, part)[0], [part])[part.value]
        types = {c.name: c.type.value for c in v.columns}
        for column in prof["columns"]:  # types as they are now (roles may have changed since)
            column["type"] = types[column["name"]]
        return {
            **prof,
            "dataset_id": v.dataset_id,
            "version": v.version,
            "split_id": split.split_id,
            "part": part,
        }

    def _part_profiles(self, v: DatasetVersion, codes: np.ndarray, parts: list[SplitPart]) -> dict:
        """{part value: profile} of the given parts of a split, in one pass over the canonical copy."""
        with self._workdir() as work:
            file = pq.ParquetFile(str(self._canonical_local(v, work)))
            profilers = {part: Profiler(file.schema_arrow) for part in parts}
            rows_seen = 0
            for batch in file.iter_batches(batch_size=262144):
                batch_codes = codes[rows_seen : rows_seen + batch.num_rows]
                rows_seen += batch.num_rows
                for part, profiler in profilers.items():
                    profiler.add(batch.filter(pa.array(batch_codes == PART_CODES[part])))
            kinds = {f.name: kind_of(f.type) for f in file.schema_arrow}
        profiles = {}
        for part, profiler in profilers.items():
            raw = profiler.finish()
            cols = [raw.column_dict(s) for s in raw.columns]
            add_histograms(cols, raw.sample, raw.rows, kinds)
            prof = {
                "row_count": raw.rows,
                "column_count": len(v.columns),
                "size_bytes": v.size_bytes,
                "duplicate_row_count": raw.duplicates,
                "columns": cols,
                "create_time": datetime.now(UTC).timestamp(),
            }
            profiles[part.value] = schema.finish_profile(prof, v.columns, raw.sample)[0]
        return profiles

    def _canonical_local(self, v: DatasetVersion, work: Path) -> Path:
        path = work / "canonical.parquet"
        with open(path, "wb") as out:
            for chunk in self.store.get(v.canonical_key):
                out.write(chunk)
        return path

    @staticmethod
    def _find_split(v: DatasetVersion, split_id: str, part: SplitPart | None) -> Split:
        split = next((s for s in v.splits if s.split_id == split_id), None)
        if split is None:
            raise NotFound("split", split_id)
        if part is None:
            raise InvalidArgument("part", "is required when split_id is set")
        return split

    def _split_codes(
        self, v: DatasetVersion, split_id: str, part: SplitPart | None
    ) -> tuple[np.ndarray, Split]:
        split = self._find_split(v, split_id, part)
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
        profile, task = schema.finish_profile(profile, columns, sample)
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
        profiles = self._part_profiles(v, codes, list(SplitPart))
        try:
            return self.repo.add_split(v.dataset_id, v.version, split, profiles), True
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
            digest, size = file_sha256(out), out.stat().st_size
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


def _page_size(page_size: int) -> int:
    if page_size < 0 or page_size > 1000:
        raise InvalidArgument("page_size", "must be between 0 and 1000")
    return page_size or 50
