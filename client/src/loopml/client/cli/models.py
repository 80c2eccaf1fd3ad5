"""`loopml models ...`: registered models, versions, aliases and artifacts."""

from __future__ import annotations

import functools
from pathlib import Path

import typer
from google.protobuf import json_format

from loopml.client.cli.output import console, emit, fail, table
from loopml.client.errors import LoopmlClientError
from loopml.client.registry import RegistryClient, from_value
from loopml.common.v1 import metric_pb2
from loopml.registry.v1 import model_pb2

app = typer.Typer(help="Registered models: versions, aliases, lineage, artifacts.", no_args_is_help=True)


def _client() -> RegistryClient:
    return RegistryClient()


def _reporting_errors(command):
    """Print a failed call readably (exit code 1) instead of a traceback."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except LoopmlClientError as error:
            fail(error)

    return run


def _dict(message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _status(version: model_pb2.ModelVersion) -> str:
    return model_pb2.ModelVersionStatus.Name(version.status).removeprefix("MODEL_VERSION_STATUS_")


def _metric_name(score: metric_pb2.MetricScore) -> str:
    name = metric_pb2.MetricName.Name(score.metric).removeprefix("METRIC_NAME_").lower()
    where = metric_pb2.EvaluationSet.Name(score.evaluation_set).removeprefix("EVALUATION_SET_").lower()
    return name if where == "unspecified" else f"{name} ({where})"


def _metrics(version) -> dict[str, float]:
    return {_metric_name(m): m.value for m in version.metrics}


def _params(version) -> dict:
    return {k: from_value(v) for k, v in sorted(version.params.items())}


def _lineage(version) -> dict:
    lineage = version.lineage
    return {
        "dataset_id": lineage.dataset.dataset_id,
        "dataset_version": lineage.dataset.version,
        "split_id": lineage.split_id,
        "search_id": lineage.search_id,
        "trial_id": lineage.trial_id,
    }


def _parse_tags(tags: list[str]) -> dict[str, str]:
    pairs = {}
    for tag in tags:
        key, sep, value = tag.partition("=")
        if not sep:
            raise typer.BadParameter(f"expected KEY=VALUE, got {tag!r}", param_hint="--tag")
        pairs[key] = value
    return pairs


def _selector(version: int | None, alias: str | None, latest: bool) -> dict:
    return {"version": version, "alias": alias, "latest": latest}


@app.command("list")
@_reporting_errors
def list_models(
    ctx: typer.Context,
    prefix: str = typer.Option("", "--prefix", help="Only names starting with this."),
    tag: list[str] = typer.Option([], "--tag", help="KEY=VALUE; repeat for several (all must match)."),
    order_by: str = typer.Option(
        "", "--order-by", help='"name", "create_time" or "update_time", optional " desc".'
    ),
):
    """List registered models."""
    with _client() as client:
        models = client.list_models(name_prefix=prefix, tags=_parse_tags(tag), order_by=order_by)
    emit(
        ctx,
        [_dict(m) for m in models],
        lambda: table(
            "models",
            ["name", "latest version", "aliases", "tags", "updated"],
            [
                (
                    m.name,
                    m.latest_version,
                    ", ".join(f"{a}→{v}" for a, v in sorted(m.aliases.items())),
                    ", ".join(f"{k}={v}" for k, v in sorted(m.tags.items())),
                    m.update_time.ToDatetime().isoformat(),
                )
                for m in models
            ],
        ),
    )


@app.command("show")
@_reporting_errors
def show(
    ctx: typer.Context,
    name: str,
    version: int = typer.Option(None, "--version", "-v", help="Show this version."),
    alias: str = typer.Option(None, "--alias", "-a", help="Show the version this alias points at."),
    latest: bool = typer.Option(False, "--latest", help="Show the highest READY version."),
):
    """Show a model, or one of its versions (with --version, --alias or --latest)."""
    with _client() as client:
        if version is None and alias is None and not latest:
            model = client.get_model(name)
            emit(ctx, _dict(model), lambda: _print_model(model))
            return
        resolved = client.resolve(name, **_selector(version, alias, latest))
    emit(ctx, _dict(resolved), lambda: _print_version(resolved))


def _print_model(model) -> None:
    console.print(f"[bold]{model.name}[/]  latest version {model.latest_version}")
    if model.description:
        console.print(model.description)
    for alias, number in sorted(model.aliases.items()):
        console.print(f"  {alias} → version {number}")
    for key, value in sorted(model.tags.items()):
        console.print(f"  tag {key}={value}")


def _print_version(version) -> None:
    console.print(
        f"[bold]{version.model_name}[/] version {version.version}  {_status(version)}"
        f"  aliases: {', '.join(version.aliases) or '-'}"
    )
    console.print(
        f"  artifact {version.artifact.uri}  {version.artifact.size_bytes} bytes"
        f"  sha256 {version.artifact.sha256}"
    )
    for key, value in _metrics(version).items():
        console.print(f"  metric {key} = {value:.6g}")
    for key, value in _params(version).items():
        console.print(f"  param {key} = {value}")
    for key, value in _lineage(version).items():
        if value:
            console.print(f"  lineage {key} = {value}")


@app.command("versions")
@_reporting_errors
def versions(
    ctx: typer.Context,
    name: str = typer.Argument("", help="The model; empty: every model."),
    dataset: str = typer.Option("", "--dataset", help="Only versions trained on this dataset id."),
    dataset_version: int = typer.Option(0, "--dataset-version", help="... and this dataset version."),
    search: str = typer.Option("", "--search", help="Only versions produced by this search id."),
):
    """List a model's versions, newest first (or versions of every model, e.g. by lineage)."""
    with _client() as client:
        found = client.list_versions(
            name,
            lineage_dataset_id=dataset,
            lineage_dataset_version=dataset_version,
            lineage_search_id=search,
        )
    emit(
        ctx,
        [_dict(v) for v in found],
        lambda: table(
            "versions",
            ["model", "version", "status", "aliases", "metrics", "dataset", "created"],
            [
                (
                    v.model_name,
                    v.version,
                    _status(v),
                    ", ".join(v.aliases),
                    ", ".join(f"{k}={x:.4g}" for k, x in _metrics(v).items()),
                    f"{v.lineage.dataset.dataset_id}@{v.lineage.dataset.version}"
                    if v.lineage.dataset.dataset_id
                    else "",
                    v.create_time.ToDatetime().isoformat(),
                )
                for v in found
            ],
        ),
    )


@app.command("compare")
@_reporting_errors
def compare(ctx: typer.Context, name: str, version_a: int, version_b: int):
    """Two versions' metrics, parameters and lineage side by side."""
    with _client() as client:
        a, b = client.get_version(name, version_a), client.get_version(name, version_b)
    sections = {}
    for section, read in (("metrics", _metrics), ("params", _params), ("lineage", _lineage)):
        left, right = read(a), read(b)
        sections[section] = {key: [left.get(key), right.get(key)] for key in sorted({*left, *right})}
    data = {"model": name, "versions": [version_a, version_b], **sections}
    emit(
        ctx,
        data,
        lambda: table(
            f"{name}: version {version_a} vs {version_b}",
            ["", "key", f"v{version_a}", f"v{version_b}"],
            [
                (section, key, pair[0], pair[1])
                for section, values in sections.items()
                for key, pair in values.items()
            ],
        ),
    )


@app.command("alias")
@_reporting_errors
def alias(
    ctx: typer.Context,
    name: str,
    alias_name: str = typer.Argument(None, metavar="ALIAS", help="The alias (omit with --history)."),
    version: int = typer.Argument(None, help="Version to point the alias at."),
    delete: bool = typer.Option(False, "--delete", help="Delete the alias."),
    history: bool = typer.Option(False, "--history", help="Show the alias moves (of ALIAS, or all)."),
    expected: int = typer.Option(
        None, "--expected", help="Move only if the alias points at this version now."
    ),
    reason: str = typer.Option("", "--reason", help="Why (recorded in the history)."),
):
    """Point ALIAS at VERSION, delete it (--delete) or show its history (--history)."""
    with _client() as client:
        if history:
            changes = client.alias_history(name, alias_name or "")
            emit(
                ctx,
                [_dict(c) for c in changes],
                lambda: table(
                    f"{name}: alias history",
                    ["alias", "from", "to", "by", "when", "reason"],
                    [
                        (
                            c.alias,
                            c.previous_version or "-",
                            c.version or "deleted",
                            c.changed_by,
                            c.change_time.ToDatetime().isoformat(),
                            c.reason,
                        )
                        for c in changes
                    ],
                ),
            )
            return
        if not alias_name:
            raise typer.BadParameter("ALIAS is required", param_hint="ALIAS")
        if delete:
            change = client.delete_alias(name, alias_name, reason=reason)
        elif version is None:
            raise typer.BadParameter("VERSION is required (or --delete / --history)", param_hint="VERSION")
        else:
            change = client.set_alias(name, alias_name, version, expected_version=expected, reason=reason)
    emit(ctx, _dict(change), lambda: console.print(_describe_change(change)))


def _describe_change(change) -> str:
    before = f"version {change.previous_version}" if change.previous_version else "nothing"
    after = f"version {change.version}" if change.version else "nothing (deleted)"
    return f"{change.model_name}@{change.alias}: {before} → {after}"


@app.command("rollback")
@_reporting_errors
def rollback(
    ctx: typer.Context,
    name: str,
    alias_name: str = typer.Argument("production", metavar="ALIAS"),
    reason: str = typer.Option("", "--reason"),
):
    """Point ALIAS (default production) back at the version it pointed at before its last move."""
    with _client() as client:
        change = client.rollback(name, alias_name, reason=reason)
    emit(ctx, _dict(change), lambda: console.print(_describe_change(change)))


@app.command("download")
@_reporting_errors
def download(
    ctx: typer.Context,
    name: str,
    output: Path = typer.Option(..., "--output", "-o", help="File to write."),
    version: int = typer.Option(None, "--version", "-v"),
    alias: str = typer.Option(None, "--alias", "-a"),
    latest: bool = typer.Option(False, "--latest"),
):
    """Download a version's artifact (default: the production alias), verified against its sha256."""
    with _client() as client:
        header = client.download(name, dest=output, **_selector(version, alias, latest))
    data = {
        "model": header.model_name,
        "version": header.version,
        "sha256": header.sha256,
        "size_bytes": header.size_bytes,
        "path": str(output),
    }
    emit(
        ctx,
        data,
        lambda: console.print(
            f"{header.model_name} version {header.version}: {header.size_bytes} bytes to {output}"
            " (sha256 verified)"
        ),
    )


@app.command("upload")
@_reporting_errors
def upload(
    ctx: typer.Context,
    name: str,
    path: Path = typer.Argument(..., exists=True, dir_okay=False),
    create: bool = typer.Option(False, "--create", help="Create the model if it does not exist."),
    description: str = typer.Option("", "--description"),
):
    """Upload an artifact file as the model's next version."""
    with _client() as client:
        version = client.upload_version(name, path, create_model_if_missing=create, description=description)
    emit(ctx, _dict(version), lambda: _print_version(version))


@app.command("delete")
@_reporting_errors
def delete(
    ctx: typer.Context,
    name: str,
    version: int = typer.Option(None, "--version", "-v", help="Delete only this version."),
    force: bool = typer.Option(False, "--force", help="Delete the model with all its versions and aliases."),
):
    """Delete a model (or one version with --version)."""
    with _client() as client:
        if version is not None:
            client.delete_version(name, version)
        else:
            client.delete_model(name, force=force)
    emit(
        ctx,
        {"deleted": name if version is None else f"{name}/versions/{version}"},
        lambda: console.print(f"deleted {name}" + (f" version {version}" if version is not None else "")),
    )
