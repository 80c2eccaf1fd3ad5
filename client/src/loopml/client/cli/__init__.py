"""The `loopml` command-line tool. Every command takes the global `--json` for machine output."""

from __future__ import annotations

import importlib

import typer

from loopml.client.errors import LoopmlClientError

app = typer.Typer(help="loopml: self-hosted AutoML. Start the stack with `loopml up`.", no_args_is_help=True)

#: Command groups, one module each under loopml.client.cli (module name -> group name).
GROUPS = {
    "datasets": "datasets",
    "search": "search",
    "models": "models",
    "predict": None,  # a single command, registered on the root app by the module
    "serve": "serve",
    "metrics": "metrics",
}


@app.callback()
def _root(ctx: typer.Context, json_output: bool = typer.Option(False, "--json", help="Print JSON.")):
    ctx.obj = {"json": json_output}


def _register() -> None:
    from loopml.client.cli import stack_commands

    stack_commands.register(app)
    for module_name, group in GROUPS.items():
        qualified = f"loopml.client.cli.{module_name}"
        try:
            module = importlib.import_module(qualified)
        except ModuleNotFoundError as exc:
            if exc.name != qualified:
                raise
            continue  # that group is not built yet
        if group:
            app.add_typer(module.app, name=group)
        else:
            module.register(app)


_register()


def main() -> None:
    from loopml.client.cli.output import fail

    try:
        app()
    except LoopmlClientError as error:
        fail(error)
