"""The container entry point: `python -m loopml.runtime.entrypoint <service> [command]`.

Commands:
  serve        (default) run the service; it migrates first only if LOOPML_MIGRATE_ON_START=true
  migrate      apply the service's database migrations, then exit (the Kubernetes Job, upgrades)
  healthcheck  exit 0 when the local server answers SERVING (compose health check, exec probe)
  <name>       run `loopml.services.<service>.<name>` if that module exists, else the function
               `<name>_main` of `loopml.services.<service>.server` (trainer: `worker` -> worker_main)
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys


def argv_for(service: str, command: str, args: list[str]) -> list[str]:
    """The process to become for `command` of `service`."""
    python = sys.executable
    if command == "serve":
        return [python, "-m", f"loopml.services.{service}", *args]
    if command == "migrate":
        return [python, "-m", "loopml.runtime.migrate", service, *args]
    if command == "healthcheck":
        return [python, "-m", "loopml.runtime.healthcheck", *args]
    if importlib.util.find_spec(f"loopml.services.{service}.{command}") is not None:
        return [python, "-m", f"loopml.services.{service}.{command}", *args]
    return []  # a `<command>_main` function of the service's server module: run in this process


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    service, command, rest = args[0], (args[1] if len(args) > 1 else "serve"), args[2:]
    target = argv_for(service, command, rest)
    if target:
        os.execv(target[0], target)  # become the service: it gets the signals (SIGTERM drains)
    server = importlib.import_module(f"loopml.services.{service}.server")
    function = getattr(server, f"{command}_main", None)
    if function is None:
        print(f"loopml {service}: unknown command {command!r}\n{__doc__}", file=sys.stderr)
        sys.exit(2)
    sys.argv = [f"loopml-{service}-{command}", *rest]
    function()


if __name__ == "__main__":
    main()
