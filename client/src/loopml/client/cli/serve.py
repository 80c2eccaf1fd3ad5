"""`loopml serve status|load|unload`: the models the inference service holds."""

from __future__ import annotations

import typer

from loopml.client.cli.output import console, emit, fail, table
from loopml.client.errors import LoopmlClientError
from loopml.client.inference import InferenceClient

app = typer.Typer(help="Models loaded in the inference service.", no_args_is_help=True)


def _selector(model: dict) -> str:
    selector = model["selector"]
    return f"v{selector}" if isinstance(selector, int) else str(selector)


def _render(models: list[dict], title: str) -> None:
    rows = []
    for model in models:
        for v in model["versions"]:
            rows.append(
                [
                    model["model"],
                    _selector(model),
                    v["version"],
                    f"{v['weight']:.2f}",
                    v["state"],
                    "on" if model["batching"]["enabled"] else "off",
                    model["memory_bytes"],
                    v["last_error"][:60],
                ]
            )
    table(
        title,
        ["model", "loaded as", "version", "weight", "state", "batching", "memory bytes", "last error"],
        rows,
    )


@app.command()
def status(ctx: typer.Context, model: str = typer.Option("", "--model", help="Only this model.")):
    """The loaded models, their versions, traffic weights and states."""
    try:
        with InferenceClient() as client:
            listing = client.list_loaded(model)
    except LoopmlClientError as error:
        fail(error)

    def render():
        _render(listing["models"], "loaded models")
        limit = listing["memory_limit_bytes"]
        console.print(f"memory: {listing['memory_used_bytes']} bytes used, cap {limit or 'none'}")

    emit(ctx, listing, render)


@app.command()
def load(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="Registered model name."),
    version: int = typer.Option(0, "--version"),
    alias: str = typer.Option("", "--alias", help="Default: production (followed: reloads when it moves)."),
    latest: bool = typer.Option(False, "--latest"),
    canary_version: int = typer.Option(0, "--canary-version", help="A second version served beside it."),
    canary_weight: float = typer.Option(
        0.0, "--canary-weight", help="Share of requests for the canary, 0..1."
    ),
    batching: bool = typer.Option(
        None, "--batching/--no-batching", help="Dynamic batching (default: server's)."
    ),
    max_batch_size: int = typer.Option(0, "--max-batch-size"),
    max_delay_ms: float = typer.Option(None, "--max-delay-ms"),
):
    """Load a model (and optionally a canary version) and wait until it is READY."""
    try:
        with InferenceClient() as client:
            loaded = client.load(
                model,
                version=version,
                alias=alias,
                latest=latest,
                canary_version=canary_version,
                canary_weight=canary_weight,
                batching=batching,
                max_batch_size=max_batch_size,
                max_delay_s=None if max_delay_ms is None else max_delay_ms / 1000.0,
            )
    except LoopmlClientError as error:
        fail(error)
    emit(ctx, loaded, lambda: _render([loaded], "loaded"))


@app.command()
def unload(
    ctx: typer.Context,
    model: str = typer.Argument(...),
    version: int = typer.Option(0, "--version"),
    alias: str = typer.Option("", "--alias"),
    latest: bool = typer.Option(False, "--latest"),
):
    """Unload a model (as it was loaded: by alias, version or latest) once its requests finish."""
    try:
        with InferenceClient() as client:
            client.unload(model, version=version, alias=alias, latest=latest)
    except LoopmlClientError as error:
        fail(error)
    emit(ctx, {"unloaded": model}, lambda: console.print(f"unloaded {model}"))
