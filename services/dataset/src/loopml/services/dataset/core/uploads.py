"""UploadDataset and ImportDataset: from bytes (streamed or in the store) to a stored version.

No grpc and no protobuf here.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from loopml.runtime.errors import Cancelled, InvalidArgument, ResourceExhausted
from loopml.runtime.objectstore import ObjectStore
from loopml.services.dataset.core import formats, schema
from loopml.services.dataset.core.formats import BatchSource
from loopml.services.dataset.core.ingest import (
    Converted,
    Spool,
    convert,
    convert_while_receiving,
    scratch_dir,
)
from loopml.services.dataset.core.model import (
    Column,
    ColumnRole,
    Compression,
    DataFormat,
    Dataset,
    DatasetVersion,
    IngestOptions,
)
from loopml.services.dataset.repository import Repository

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
KEY_ROOT = "datasets"
_EXTENSIONS = {
    DataFormat.CSV: "csv",
    DataFormat.TSV: "tsv",
    DataFormat.PARQUET: "parquet",
    DataFormat.JSONL: "jsonl",
}


@dataclass(frozen=True)
class Limits:
    max_upload_bytes: int
    spool_dir: str | None = None
    #: Bytes the readers parse at a time (types are inferred from the first block).
    read_block_bytes: int = 4 << 20


def validate_name(name: str, field: str) -> str:
    if not name:
        raise InvalidArgument(field, "is required")
    if not NAME.match(name):
        raise InvalidArgument(field, f"{name!r} does not match [A-Za-z0-9][A-Za-z0-9._-]{{0,127}}")
    return name


class Uploads:
    """Turns an upload or an imported object into a stored version: the original and the canonical
    Parquet copy in the store under `datasets/<random>/`, the metadata in the repository."""

    def __init__(self, repository: Repository, store: ObjectStore, limits: Limits):
        self.repo, self.store, self.limits = repository, store, limits

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
        with scratch_dir(self.limits.spool_dir) as work:
            spool = Spool(work / "original")
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dataset-convert") as pool:
                streamed = pool.submit(
                    convert_while_receiving,
                    spool,
                    options.filename,
                    options.format,
                    options.compression,
                    options.csv,
                    self.limits.read_block_bytes,
                    work / "canonical.parquet",
                )
                try:
                    spooled = spool.receive(
                        chunks, limit=self.limits.max_upload_bytes, expected_sha256=options.sha256
                    )
                    existing = self.repo.find_by_sha(options.name, spooled.sha256)
                    if existing is not None:
                        return (*existing, False)
                    return self._ingest(
                        options,
                        work,
                        spooled.path,
                        spooled.size,
                        spooled.sha256,
                        "upload",
                        None,
                        still_wanted,
                        streamed,
                    )
                finally:
                    spool.abandon()  # stops the streaming conversion where it still runs

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
        with scratch_dir(self.limits.spool_dir) as work:
            path = work / "original"
            with open(path, "wb") as out:
                for chunk in self.store.get(key):
                    out.write(chunk)
            return self._ingest(
                options, work, path, info.size, info.sha256, "import", key, lambda: True, None
            )

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
        streamed: Future | None,
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
                converted = _streamed_conversion(streamed, detected)
                if converted is None:
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
                    converted.sha256,
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

    def _put_file(self, key: str, path: Path, sha: str):
        """The file is never written again, so the store may take it over instead of copying it."""
        return self.store.put_file(key, path, sha256=sha)

    def _profile(self, converted: Converted, columns: list[Column], size: int) -> tuple[dict, object]:
        profile = {
            "row_count": converted.rows,
            "column_count": len(columns),
            "size_bytes": size,
            "duplicate_row_count": converted.raw.duplicates,
            "columns": converted.columns,
            "create_time": datetime.now(UTC).timestamp(),
        }
        return schema.finish_profile(profile, columns, converted.raw.sample)


def _streamed_conversion(streamed: Future | None, detected: formats.Detected) -> Converted | None:
    """The conversion done while the upload arrived, when it succeeded on the same format; None
    where the complete file must be converted (its errors name the line or column)."""
    if streamed is None:
        return None
    try:
        result = streamed.result()
    except Exception:
        return None
    if result is None or result[0] != detected:
        return None
    return result[1]
