"""How CLI commands print: a rich table for people, or `--json` for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from loopml.client.errors import LoopmlClientError

console = Console()
err_console = Console(stderr=True)


def json_mode(ctx: typer.Context) -> bool:
    root = ctx.find_root()
    return bool(root.obj and root.obj.get("json"))


def emit(ctx: typer.Context, data: Any, render: Callable[[], None] | None = None) -> None:
    """Print `data` as JSON in --json mode, else call `render` (or pretty-print `data`)."""
    if json_mode(ctx):
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    elif render is not None:
        render()
    else:
        console.print(data)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    t = Table(title=title)
    for column in columns:
        t.add_column(column)
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    console.print(t)


def fail(error: LoopmlClientError) -> None:
    """Print a failed call readably and exit non-zero."""
    err_console.print(f"[bold red]{error.code}[/]: {error.message}")
    for violation in error.field_violations:
        err_console.print(f"  field [bold]{violation.field}[/]: {violation.description}")
    if error.resource_name:
        err_console.print(f"  resource: {error.resource_type} {error.resource_name}")
    raise typer.Exit(code=1)
