"""`loopml predict MODEL FILE`: predictions for rows from a CSV or JSON file (or stdin)."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import typer

from loopml.client.cli.output import emit, fail, table
from loopml.client.errors import LoopmlClientError
from loopml.client.inference import InferenceClient


def _cell(text: str):
    """A CSV cell typed: empty = missing, then int, float, true/false, else the string."""
    if text == "":
        return None
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def read_rows(source: str, rows_json: str | None = None, fmt: str = "") -> list[dict] | dict:
    """Rows from `--rows` JSON, or a .csv / .json file ("-" reads stdin; `fmt` overrides the suffix)."""
    if rows_json:
        return json.loads(rows_json)
    text = sys.stdin.read() if source == "-" else Path(source).read_text()
    kind = fmt or ("json" if source.endswith(".json") or text.lstrip()[:1] in "[{" else "csv")
    if kind == "json":
        data = json.loads(text)
        return data["rows"] if isinstance(data, dict) and "rows" in data else data
    return [{k: _cell(v) for k, v in row.items()} for row in csv.DictReader(io.StringIO(text))]


def predict(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="Registered model name."),
    source: str = typer.Argument("-", help="CSV or JSON file of rows ('-' for stdin)."),
    version: int = typer.Option(0, "--version", help="A version number."),
    alias: str = typer.Option("", "--alias", help="An alias (default: production)."),
    latest: bool = typer.Option(False, "--latest", help="The highest READY version."),
    rows: str = typer.Option(None, "--rows", help='Rows as JSON instead of a file: [{"col": 1}, ...].'),
    fmt: str = typer.Option("", "--format", help="csv or json (default: from the file)."),
    request_id: str = typer.Option("", "--request-id", help="Request id to log with the predictions."),
    no_probabilities: bool = typer.Option(False, "--no-probabilities", help="Skip class probabilities."),
):
    """Predict rows with a served model; prints a table, or the full answer with --json."""
    try:
        data = read_rows(source, rows, fmt)
    except (OSError, ValueError) as exc:
        typer.echo(f"cannot read rows: {exc}", err=True)
        raise typer.Exit(code=2) from None
    try:
        with InferenceClient() as client:
            result = client.predict(
                model,
                data,
                version=version,
                alias=alias,
                latest=latest,
                request_id=request_id,
                omit_probabilities=no_probabilities,
            )
    except LoopmlClientError as error:
        fail(error)

    def render():
        labels = [str(c) for c in result.class_labels]
        body = [
            [i, p, *(f"{x:.4f}" for x in (result.probabilities[i] if result.probabilities else []))]
            for i, p in enumerate(result.predictions)
        ]
        table(
            f"{result.model_name} v{result.model_version} (request {result.request_id})",
            ["row", "prediction", *(f"p({label})" for label in labels)],
            body,
        )

    emit(ctx, result.as_dict(), render)


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)
