"""`loopml up` and `loopml status`."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import typer

from loopml.client.cli.output import console, emit, table
from loopml.client.config import SERVICES, ClientConfig


def register(app: typer.Typer) -> None:
    app.command("up")(up)
    app.command("status")(status)


def up(
    ctx: typer.Context,
    data_dir: Path = typer.Option(Path.home() / ".loopml", envvar="LOOPML_DATA_DIR", help="Where data lives."),
    host: str = typer.Option("127.0.0.1", help="Address the services bind."),
    base_port: int = typer.Option(50051, help="Port of the first service; the others follow."),
    timeout: float = typer.Option(30.0, help="Seconds to wait for every service to be SERVING."),
):
    """Start all five services on this machine and keep them running until Ctrl-C.

    Embedded by default (SQLite + a local folder under DATA_DIR). Set LOOPML_DATABASE_URL and
    LOOPML_OBJECT_STORE_URL (with LOOPML_S3_*) to run the production wiring instead.
    """
    from loopml.client.stack import Stack, StackError

    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops the stack as cleanly as Ctrl-C
    stack = Stack(data_dir, host=host, base_port=base_port)
    started = time.monotonic()
    try:
        stack.start()
        stack.wait_until_serving(timeout)
    except StackError as exc:
        stack.stop()
        console.print(f"[bold red]loopml up failed:[/] {exc}")
        raise typer.Exit(code=1) from None
    except KeyboardInterrupt:
        stack.stop()
        raise typer.Exit(code=130) from None
    elapsed = time.monotonic() - started
    emit(ctx, {"status": "SERVING", "addresses": stack.addresses, "data_dir": str(data_dir),
               "seconds_to_serving": round(elapsed, 2)},
         lambda: _print_up(stack.addresses, data_dir, elapsed))
    try:
        while (exited := stack.first_exited()) is None:
            time.sleep(0.5)
        console.print(f"[bold red]{exited.name} exited (code {exited.process.returncode}); stopping.[/]")
        code = 1
    except KeyboardInterrupt:
        code = 0
    console.print("stopping ...")
    stack.stop()
    raise typer.Exit(code=code)


def _interrupt(_signum, _frame):
    raise KeyboardInterrupt


def _print_up(addresses: dict[str, str], data_dir: Path, elapsed: float) -> None:
    table("loopml is SERVING", ["service", "address"], addresses.items())
    console.print(f"data: {data_dir}   ready in {elapsed:.1f}s   Ctrl-C stops everything")


def status(ctx: typer.Context):
    """Health of every service at the configured addresses (LOOPML_<SERVICE>_ADDRESS)."""
    from loopml.client.stack import _HealthOnly

    config = ClientConfig.from_env()
    result = {}
    for name in SERVICES:
        with _HealthOnly(config, name) as client:
            result[name] = {"address": config.addresses[name], "status": client.health()}
    emit(ctx, result, lambda: table("loopml services", ["service", "address", "status"],
                                    [(n, r["address"], r["status"]) for n, r in result.items()]))
    if any(r["status"] != "SERVING" for r in result.values()):
        raise typer.Exit(code=1)
