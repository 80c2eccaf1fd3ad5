"""`loopml datasets ...`: upload, list, show, profile, preview, roles, split, download, delete.

DATASET arguments take a dataset id or its name.
"""

from __future__ import annotations

from pathlib import Path

import typer
from google.protobuf.json_format import MessageToDict
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from loopml.client.cli.output import console, emit, json_mode, table
from loopml.client.datasets import DatasetClient
from loopml.common.v1 import schema_pb2
from loopml.dataset.v1 import dataset_pb2

app = typer.Typer(
    help="Upload, inspect, profile, preview, split and download datasets.", no_args_is_help=True
)


def _client() -> DatasetClient:
    return DatasetClient()


def _dict(message) -> dict:
    return MessageToDict(message, preserving_proto_field_name=True)


def _enum_name(enum, value: int, prefix: str) -> str:
    return enum.Name(value).removeprefix(prefix).lower()


def _task(t) -> str:
    return f"{_enum_name(schema_pb2.TaskType, t.task, 'TASK_TYPE_')} ({t.reason})"


def _value(v) -> str:
    kind = v.WhichOneof("kind")
    if kind in (None, "null_value"):
        return ""
    if kind == "timestamp_value":
        return v.timestamp_value.ToDatetime().isoformat()
    if kind == "double_value":
        return f"{v.double_value:.6g}"
    return str(getattr(v, kind))


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected COLUMN={what.upper()}, got {item!r}")
        out[key] = value
    return out


@app.command()
def upload(
    ctx: typer.Context,
    path: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="CSV, TSV, Parquet or JSON Lines (optionally .gz)."
    ),
    name: str = typer.Option(
        "", "--name", "-n", help="Dataset name (default: the file name without extension)."
    ),
    label: str = typer.Option("", "--label", "-l", help="Label column."),
    format: str = typer.Option("", "--format", help="csv, tsv, parquet or jsonl (default: detected)."),
    description: str = typer.Option("", "--description"),
    tag: list[str] = typer.Option([], "--tag", help="KEY=VALUE, repeatable."),
):
    """Upload a file as a new dataset, or a new version of the dataset with that name."""
    dataset_name = name or path.name.split(".")[0]
    with _client() as client:
        if json_mode(ctx):
            result = client.upload(
                path,
                name=dataset_name,
                label_column=label,
                format=format or None,
                description=description,
                tags=_pairs(tag, "value"),
            )
        else:
            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=console,
            ) as progress:
                task = progress.add_task(f"uploading {path.name}", total=path.stat().st_size)
                result = client.upload(
                    path,
                    name=dataset_name,
                    label_column=label,
                    format=format or None,
                    description=description,
                    tags=_pairs(tag, "value"),
                    progress=lambda sent, total: progress.update(task, completed=sent),
                )

    def render():
        v = result.version
        state = "created" if result.created else "already there (identical bytes)"
        console.print(
            f"dataset [bold]{result.dataset.name}[/] ({v.ref.dataset_id}) version {v.ref.version}: {state}"
        )
        console.print(
            f"{v.row_count} rows, {len(v.columns)} columns, {v.size_bytes} bytes, sha256 {v.sha256[:12]}…"
        )
        if v.HasField("task_inference"):
            console.print(f"task: {_task(v.task_inference)}")

    emit(ctx, _dict(result), render)


@app.command("list")
def list_(
    ctx: typer.Context,
    prefix: str = typer.Option("", "--prefix", help="Only names starting with this."),
    tag: list[str] = typer.Option([], "--tag", help="KEY=VALUE, repeatable."),
    limit: int = typer.Option(100, "--limit", help="At most this many."),
):
    """List datasets, most recently changed first."""
    with _client() as client:
        items = []
        for d in client.list(name_prefix=prefix, tags=_pairs(tag, "value")):
            items.append(d)
            if len(items) >= limit:
                break
    emit(
        ctx,
        [_dict(d) for d in items],
        lambda: table(
            "datasets",
            ["name", "id", "latest", "versions", "updated"],
            [
                (
                    d.name,
                    d.dataset_id,
                    d.latest_version,
                    d.version_count,
                    d.update_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S"),
                )
                for d in items
            ],
        ),
    )


@app.command()
def show(
    ctx: typer.Context, dataset: str = typer.Argument(...), version: int = typer.Option(0, "--version", "-v")
):
    """A dataset version: its columns with types and roles, task, splits."""
    with _client() as client:
        result = client.get(dataset, version)
    v = result.version

    def render():
        console.print(
            f"[bold]{result.dataset.name}[/] ({v.ref.dataset_id}) version {v.ref.version} "
            f"of {result.dataset.latest_version}: "
            f"{v.row_count} rows, {v.size_bytes} bytes, "
            f"{_enum_name(dataset_pb2.DataFormat, v.format, 'DATA_FORMAT_')}"
        )
        table(
            "columns",
            ["#", "name", "type", "role", "nullable", "why"],
            [
                (
                    c.index,
                    c.name,
                    _enum_name(schema_pb2.ColumnType, c.type, "COLUMN_TYPE_"),
                    _enum_name(schema_pb2.ColumnRole, c.role, "COLUMN_ROLE_"),
                    "yes" if c.nullable else "",
                    c.inference_reason,
                )
                for c in v.columns
            ],
        )
        if v.HasField("task_inference"):
            t = v.task_inference
            console.print(f"label [bold]{t.label_column}[/]: {_task(t)}")
        for s in v.splits:
            console.print(
                f"split {s.split_id} {s.name}: train {s.train_rows}, "
                f"validation {s.validation_rows}, test {s.test_rows}"
            )

    emit(ctx, _dict(result), render)


@app.command()
def profile(
    ctx: typer.Context,
    dataset: str = typer.Argument(...),
    version: int = typer.Option(0, "--version", "-v"),
    split: str = typer.Option("", "--split", help="Split id."),
    part: str = typer.Option("", "--part", help="train, validation or test."),
):
    """Per-column statistics and data-quality warnings."""
    with _client() as client:
        ref = client.resolve(dataset, version)
        p = client.profile(ref.dataset_id, ref.version, split_id=split, part=part)

    def render():
        console.print(
            f"{p.row_count} rows, {p.column_count} columns, {p.size_bytes} bytes, "
            f"{p.duplicate_row_count} duplicate rows"
        )
        rows = []
        for c in p.columns:
            top = ", ".join(f"{_value(t.value)} ({t.count})" for t in c.top_values[:3])
            rows.append(
                (
                    c.name,
                    _enum_name(schema_pb2.ColumnType, c.type, "COLUMN_TYPE_"),
                    c.count,
                    c.missing_count,
                    f"{c.distinct_count}{'~' if c.distinct_count_approximate else ''}",
                    _value(c.min),
                    _value(c.max),
                    f"{c.mean:.4g}" if c.HasField("mean") else "",
                    f"{c.std:.4g}" if c.HasField("std") else "",
                    top,
                )
            )
        table(
            "profile",
            ["column", "type", "count", "missing", "distinct", "min", "max", "mean", "std", "top values"],
            rows,
        )
        for w in p.warnings:
            console.print(
                f"[yellow]warning[/] "
                f"{_enum_name(dataset_pb2.DatasetWarningKind, w.kind, 'DATASET_WARNING_KIND_')}: {w.message}"
            )

    emit(ctx, _dict(p), render)


def _cells(column) -> list[str]:
    kind = column.WhichOneof("values")
    nulls = set(column.null_indices)
    values = list(getattr(column, kind).values) if kind else []
    out = []
    for i, v in enumerate(values):
        if i in nulls:
            out.append("")
        elif kind == "timestamp_values":
            out.append(v.ToDatetime().isoformat())
        elif kind == "double_values":
            out.append(f"{v:.6g}")
        else:
            out.append(str(v))
    return out


@app.command()
def preview(
    ctx: typer.Context,
    dataset: str = typer.Argument(...),
    version: int = typer.Option(0, "--version", "-v"),
    rows: int = typer.Option(10, "--rows", "-r"),
    sample: bool = typer.Option(False, "--sample", help="A seeded random sample instead of the first rows."),
    seed: int = typer.Option(0, "--seed"),
    columns: str = typer.Option("", "--columns", help="Comma-separated column names."),
    split: str = typer.Option("", "--split"),
    part: str = typer.Option("", "--part"),
):
    """Show rows, typed."""
    with _client() as client:
        ref = client.resolve(dataset, version)
        result = client.preview(
            ref.dataset_id,
            ref.version,
            rows=rows,
            sample=sample,
            seed=seed,
            columns=[c for c in columns.split(",") if c],
            split_id=split,
            part=part,
        )
    cells = [_cells(c) for c in result.rows.columns]
    records = [
        dict(zip([c.name for c in result.rows.columns], row, strict=False))
        for row in zip(*cells, strict=False)
    ]
    emit(
        ctx,
        {"total_rows": result.total_rows, "rows": records},
        lambda: table(
            f"{len(records)} of {result.total_rows} rows",
            [c.name for c in result.rows.columns],
            list(zip(*cells, strict=False)),
        ),
    )


@app.command()
def roles(
    ctx: typer.Context,
    dataset: str = typer.Argument(...),
    version: int = typer.Option(0, "--version", "-v"),
    label: str = typer.Option("", "--label", "-l", help="The label column."),
    role: list[str] = typer.Option(
        [], "--role", help="COLUMN=ROLE (label, feature, ignored, id, weight, time)."
    ),
    type_: list[str] = typer.Option(
        [], "--type", help="COLUMN=TYPE (numeric, integer, boolean, categorical, datetime, text, identifier)."
    ),
    reset: list[str] = typer.Option([], "--reset", help="Back to the inferred type and role."),
):
    """Set the label, column roles and type overrides."""
    with _client() as client:
        ref = client.resolve(dataset, version)
        v = client.set_roles(
            ref.dataset_id,
            ref.version,
            label=label,
            roles=_pairs(role, "role"),
            types=_pairs(type_, "type"),
            reset=reset,
        )

    def render():
        table(
            "columns",
            ["name", "type", "role"],
            [
                (
                    c.name,
                    _enum_name(schema_pb2.ColumnType, c.type, "COLUMN_TYPE_"),
                    _enum_name(schema_pb2.ColumnRole, c.role, "COLUMN_ROLE_"),
                )
                for c in v.columns
            ],
        )
        if v.HasField("task_inference"):
            console.print(f"task: {_task(v.task_inference)}")

    emit(ctx, _dict(v), render)


@app.command()
def split(
    ctx: typer.Context,
    dataset: str = typer.Argument(...),
    version: int = typer.Option(0, "--version", "-v"),
    train: float = typer.Option(0.8, "--train"),
    validation: float = typer.Option(0.0, "--validation"),
    test: float = typer.Option(0.2, "--test"),
    strategy: str = typer.Option("auto", "--strategy", help="auto, random, stratified, group or time."),
    column: str = typer.Option("", "--column", help="Stratify, group or time column."),
    seed: int = typer.Option(0, "--seed"),
    name: str = typer.Option("", "--name"),
):
    """Create (or find) a stored train/validation/test split."""
    with _client() as client:
        ref = client.resolve(dataset, version)
        result = client.create_split(
            ref.dataset_id,
            ref.version,
            train=train,
            validation=validation,
            test=test,
            strategy=strategy,
            seed=seed,
            name=name,
            stratify_column=column if strategy == "stratified" else "",
            group_column=column if strategy == "group" else "",
            time_column=column if strategy == "time" else "",
        )
    s = result.split
    emit(
        ctx,
        _dict(result),
        lambda: console.print(
            f"split {s.split_id} ({'created' if result.created else 'existing'}, "
            f"{_enum_name(dataset_pb2.SplitStrategy, s.spec.strategy, 'SPLIT_STRATEGY_')}): "
            f"train {s.train_rows}, validation {s.validation_rows}, test {s.test_rows}"
        ),
    )


@app.command()
def download(
    ctx: typer.Context,
    dataset: str = typer.Argument(...),
    output: Path = typer.Argument(..., help="File to write."),
    version: int = typer.Option(0, "--version", "-v"),
    canonical: bool = typer.Option(
        False, "--canonical", help="The canonical Parquet copy instead of the original bytes."
    ),
    split: str = typer.Option("", "--split"),
    part: str = typer.Option("", "--part"),
):
    """Download the original bytes, the canonical Parquet copy, or one split part."""
    with _client() as client:
        ref = client.resolve(dataset, version)
        header = client.download(
            ref.dataset_id, ref.version, destination=output, canonical=canonical, split_id=split, part=part
        )
    emit(
        ctx,
        {"path": str(output), **_dict(header)},
        lambda: console.print(f"wrote {header.size_bytes} bytes to {output} (sha256 verified)"),
    )


@app.command()
def delete(
    ctx: typer.Context,
    dataset: str = typer.Argument(...),
    version: int = typer.Option(0, "--version", "-v", help="0: every version."),
    force: bool = typer.Option(False, "--force", help="Even if a registered model was trained on it."),
):
    """Delete a version, or the whole dataset, with its stored objects."""
    with _client() as client:
        dataset_id = client.get(dataset).dataset.dataset_id
        result = client.delete(dataset_id, version, force=force)
    emit(
        ctx,
        _dict(result),
        lambda: console.print(
            f"deleted versions {list(result.deleted_versions)} and {result.deleted_object_count} objects"
        ),
    )
