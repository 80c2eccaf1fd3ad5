"""Protobuf <-> domain converters of the dataset service (with api.py, the only *_pb2 importer)."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf.timestamp_pb2 import Timestamp

from loopml.common.v1 import refs_pb2, schema_pb2, stats_pb2, value_pb2
from loopml.dataset.v1 import dataset_pb2, dataset_service_pb2
from loopml.services.dataset.core.model import (
    Column,
    ColumnRole,
    ColumnType,
    Compression,
    CsvOptions,
    DataFormat,
    Dataset,
    DatasetVersion,
    IngestOptions,
    Split,
    SplitPart,
    SplitSpec,
    SplitStrategy,
    TaskInference,
)
from loopml.services.dataset.core.values import untag

_FORMATS = {
    dataset_pb2.DATA_FORMAT_CSV: DataFormat.CSV,
    dataset_pb2.DATA_FORMAT_TSV: DataFormat.TSV,
    dataset_pb2.DATA_FORMAT_PARQUET: DataFormat.PARQUET,
    dataset_pb2.DATA_FORMAT_JSONL: DataFormat.JSONL,
}
_COMPRESSIONS = {
    dataset_pb2.COMPRESSION_NONE: Compression.NONE,
    dataset_pb2.COMPRESSION_GZIP: Compression.GZIP,
}
_STRATEGIES = {
    dataset_pb2.SPLIT_STRATEGY_UNSPECIFIED: SplitStrategy.AUTO,
    dataset_pb2.SPLIT_STRATEGY_RANDOM: SplitStrategy.RANDOM,
    dataset_pb2.SPLIT_STRATEGY_STRATIFIED: SplitStrategy.STRATIFIED,
    dataset_pb2.SPLIT_STRATEGY_GROUP: SplitStrategy.GROUP,
    dataset_pb2.SPLIT_STRATEGY_TIME: SplitStrategy.TIME,
}
_PARTS = {
    dataset_pb2.SPLIT_PART_TRAIN: SplitPart.TRAIN,
    dataset_pb2.SPLIT_PART_VALIDATION: SplitPart.VALIDATION,
    dataset_pb2.SPLIT_PART_TEST: SplitPart.TEST,
}


def _inverse(mapping: dict) -> dict:
    return {v: k for k, v in mapping.items()}


def timestamp(value: datetime | float | None) -> Timestamp:
    ts = Timestamp()
    if isinstance(value, datetime):
        ts.FromDatetime(value)
    elif value is not None:
        ts.FromNanoseconds(int(value * 1e9))
    return ts


# -- requests -------------------------------------------------------------------------------------


def data_format(value: int) -> DataFormat | None:
    return _FORMATS.get(value)


def compression(value: int) -> Compression | None:
    return _COMPRESSIONS.get(value)


def csv_options(msg: dataset_pb2.CsvOptions) -> CsvOptions:
    return CsvOptions(msg.delimiter, msg.quote_char, msg.no_header, list(msg.null_values))


def upload_options(header: dataset_service_pb2.UploadDatasetHeader, created_by: str = "") -> IngestOptions:
    return IngestOptions(
        name=header.name,
        description=header.description,
        filename=header.filename,
        format=data_format(header.format),
        compression=compression(header.compression),
        csv=csv_options(header.csv_options),
        size_bytes=header.size_bytes,
        sha256=header.sha256,
        label_column=header.label_column,
        tags=dict(header.tags),
        created_by=created_by,
    )


def import_options(request: dataset_service_pb2.ImportDatasetRequest, created_by: str = "") -> IngestOptions:
    return IngestOptions(
        name=request.name,
        description=request.description,
        filename=request.uri.rsplit("/", 1)[-1],
        format=data_format(request.format),
        compression=compression(request.compression),
        csv=csv_options(request.csv_options),
        sha256=request.sha256,
        label_column=request.label_column,
        tags=dict(request.tags),
        created_by=created_by,
    )


def split_part(value: int) -> SplitPart | None:
    return _PARTS.get(value)


def split_spec(msg: dataset_pb2.SplitSpec) -> SplitSpec:
    return SplitSpec(
        _STRATEGIES.get(msg.strategy, SplitStrategy.AUTO),
        msg.train_ratio,
        msg.validation_ratio,
        msg.test_ratio,
        msg.seed,
        msg.stratify_column,
        msg.group_column,
        msg.time_column,
    )


def column_type(value: int) -> ColumnType | None:
    return (
        ColumnType(schema_pb2.ColumnType.Name(value).removeprefix("COLUMN_TYPE_").lower()) if value else None
    )


def column_role(value: int) -> ColumnRole | None:
    return (
        ColumnRole(schema_pb2.ColumnRole.Name(value).removeprefix("COLUMN_ROLE_").lower()) if value else None
    )


# -- responses ------------------------------------------------------------------------------------


def _type_pb(value: ColumnType) -> int:
    return schema_pb2.ColumnType.Value(f"COLUMN_TYPE_{value.name}")


def _role_pb(value: ColumnRole) -> int:
    return schema_pb2.ColumnRole.Value(f"COLUMN_ROLE_{value.name}")


def value_pb(pair) -> value_pb2.Value:
    python = untag(pair)
    return scalar_pb(python)


def scalar_pb(python) -> value_pb2.Value:
    msg = value_pb2.Value()
    if python is None:
        msg.null_value = 0
    elif isinstance(python, bool):
        msg.bool_value = python
    elif isinstance(python, int):
        msg.int64_value = python
    elif isinstance(python, float):
        msg.double_value = python
    elif isinstance(python, datetime):
        msg.timestamp_value.CopyFrom(timestamp(python))
    else:
        msg.string_value = str(python)
    return msg


def dataset_pb(d: Dataset) -> dataset_pb2.Dataset:
    return dataset_pb2.Dataset(
        dataset_id=d.dataset_id,
        name=d.name,
        description=d.description,
        tags=d.tags,
        latest_version=d.latest_version,
        version_count=d.version_count,
        create_time=timestamp(d.create_time),
        update_time=timestamp(d.update_time),
        created_by=d.created_by,
    )


def column_pb(c: Column) -> dataset_pb2.ColumnSchema:
    return dataset_pb2.ColumnSchema(
        name=c.name,
        index=c.index,
        type=_type_pb(c.type),
        inferred_type=_type_pb(c.inferred_type),
        inference_reason=c.inference_reason,
        nullable=c.nullable,
        role=_role_pb(c.role),
        physical_type=c.physical_type,
    )


def task_pb(t: TaskInference) -> dataset_pb2.TaskInference:
    return dataset_pb2.TaskInference(
        label_column=t.label_column,
        task=schema_pb2.TaskType.Value(f"TASK_TYPE_{t.task.name}"),
        reason=t.reason,
        class_labels=[value_pb(p) for p in t.class_labels],
    )


def split_pb(s: Split) -> dataset_pb2.Split:
    spec = s.spec
    return dataset_pb2.Split(
        split_id=s.split_id,
        name=s.name,
        dataset=refs_pb2.DatasetRef(dataset_id=s.dataset_id, version=s.version),
        spec=dataset_pb2.SplitSpec(
            strategy=_inverse(_STRATEGIES)[spec.strategy],
            train_ratio=spec.train_ratio,
            validation_ratio=spec.validation_ratio,
            test_ratio=spec.test_ratio,
            seed=spec.seed,
            stratify_column=spec.stratify_column,
            group_column=spec.group_column,
            time_column=spec.time_column,
        ),
        train_rows=s.train_rows,
        validation_rows=s.validation_rows,
        test_rows=s.test_rows,
        create_time=timestamp(s.create_time),
    )


def version_pb(v: DatasetVersion) -> dataset_pb2.DatasetVersion:
    msg = dataset_pb2.DatasetVersion(
        ref=refs_pb2.DatasetRef(dataset_id=v.dataset_id, version=v.version),
        state=dataset_pb2.DATASET_VERSION_STATE_READY,
        source=dataset_pb2.DATASET_SOURCE_UPLOAD
        if v.source == "upload"
        else dataset_pb2.DATASET_SOURCE_IMPORT,
        filename=v.filename,
        format=_inverse(_FORMATS)[v.format],
        compression=_inverse(_COMPRESSIONS)[v.compression],
        original_uri=v.original_uri,
        canonical_uri=v.canonical_uri,
        sha256=v.sha256,
        size_bytes=v.size_bytes,
        row_count=v.row_count,
        columns=[column_pb(c) for c in v.columns],
        splits=[split_pb(s) for s in v.splits],
        create_time=timestamp(v.create_time),
        created_by=v.created_by,
    )
    if v.task is not None:
        msg.task_inference.CopyFrom(task_pb(v.task))
    return msg


def _column_profile_pb(c: dict) -> dataset_pb2.ColumnProfile:
    msg = dataset_pb2.ColumnProfile(
        name=c["name"],
        type=_type_pb(ColumnType(c["type"])) if c.get("type") else 0,
        count=c["count"],
        missing_count=c["missing"],
        distinct_count=c["distinct"],
        distinct_count_approximate=c["distinct_approximate"],
        top_values=[stats_pb2.ValueCount(value=value_pb(v), count=n) for v, n in c["top"]],
    )
    if c.get("min") is not None:
        msg.min.CopyFrom(value_pb(c["min"]))
        msg.max.CopyFrom(value_pb(c["max"]))
    for key in ("mean", "std", "mean_length"):
        if c.get(key) is not None:
            setattr(msg, key, float(c[key]))
    for q, value in c.get("quantiles", []):
        msg.quantiles.add(quantile=q, value=value)
    if c.get("histogram"):
        msg.histogram.bin_edges.extend(c["histogram"]["edges"])
        msg.histogram.counts.extend(c["histogram"]["counts"])
    return msg


def profile_pb(p: dict) -> dataset_pb2.DatasetProfile:
    return dataset_pb2.DatasetProfile(
        dataset=refs_pb2.DatasetRef(dataset_id=p["dataset_id"], version=p["version"]),
        split_id=p["split_id"],
        part=_inverse(_PARTS)[p["part"]] if p.get("part") else 0,
        row_count=p["row_count"],
        column_count=p["column_count"],
        size_bytes=p["size_bytes"],
        duplicate_row_count=p["duplicate_row_count"],
        columns=[_column_profile_pb(c) for c in p["columns"]],
        warnings=[
            dataset_pb2.DatasetWarning(
                kind=dataset_pb2.DatasetWarningKind.Value(f"DATASET_WARNING_KIND_{w['kind'].upper()}"),
                column=w["column"],
                message=w["message"],
                value=w["value"],
            )
            for w in p.get("warnings", [])
        ],
        create_time=timestamp(p["create_time"]),
    )


def table_pb(table: pa.Table) -> value_pb2.Table:
    """A typed, columnar common.v1.Table (missing cells listed in null_indices)."""
    out = value_pb2.Table(row_count=table.num_rows)
    for name, chunked in zip(table.column_names, table.columns, strict=False):
        array = chunked.combine_chunks() if chunked.num_chunks else pa.array([], type=chunked.type)
        column = out.columns.add(name=name)
        nulls = (
            np.flatnonzero(np.asarray(array.is_null().to_numpy(zero_copy_only=False), dtype=bool))
            if array.null_count
            else []
        )
        column.null_indices.extend(int(i) for i in nulls)
        t = array.type
        if pa.types.is_boolean(t):
            column.bool_values.values.extend(array.fill_null(False).to_pylist())
        elif pa.types.is_integer(t):
            column.int64_values.values.extend(array.cast(pa.int64()).fill_null(0).to_pylist())
        elif pa.types.is_floating(t) or pa.types.is_decimal(t):
            column.double_values.values.extend(array.cast(pa.float64()).fill_null(0.0).to_pylist())
        elif pa.types.is_timestamp(t) or pa.types.is_date(t):
            micros = array.cast(pa.timestamp("us")).cast(pa.int64()).fill_null(0).to_pylist()
            column.timestamp_values.SetInParent()
            for us in micros:
                column.timestamp_values.values.add().FromMicroseconds(us)
        elif pa.types.is_null(t):
            pass
        else:
            column.string_values.values.extend(pc.cast(array, pa.string()).fill_null("").to_pylist())
    return out


def download_header_pb(d) -> dataset_service_pb2.DownloadDatasetHeader:
    return dataset_service_pb2.DownloadDatasetHeader(
        dataset=refs_pb2.DatasetRef(dataset_id=d.dataset_id, version=d.version),
        form=dataset_service_pb2.DATASET_FORM_CANONICAL
        if d.canonical
        else dataset_service_pb2.DATASET_FORM_ORIGINAL,
        format=_inverse(_FORMATS)[d.format],
        compression=_inverse(_COMPRESSIONS)[d.compression],
        filename=d.filename,
        size_bytes=d.size,
        sha256=d.sha256,
    )
