"""`python -m loopml.runtime.migrate <service>...`: bring the services' database schemas up to date.

Containers set LOOPML_MIGRATE_ON_START=false and run this once per release (the Kubernetes
migration Job, `docker compose run`). It reads the service's settings from the environment like the
service does, then builds the service's server with migrate_on_start forced on, which migrates
(a service's `make_server` runs its migrations when `settings.migrate_on_start` is true), and closes
it without serving.
"""

from __future__ import annotations

import importlib
import inspect
import sys

from loopml.runtime.settings import ServiceSettings, SettingsError, load_settings


def settings_class(service: str) -> type[ServiceSettings]:
    """The ServiceSettings subclass of `loopml.services.<service>.settings`."""
    module = importlib.import_module(f"loopml.services.{service}.settings")
    for _, value in inspect.getmembers(module, inspect.isclass):
        if issubclass(value, ServiceSettings) and value.service_name == service:
            return value
    raise LookupError(f"no ServiceSettings subclass for {service!r} in {module.__name__}")


def migrate_service(service: str) -> None:
    # A port of its own: the service itself may be running beside this one-shot command.
    settings = load_settings(settings_class(service), migrate_on_start=True, listen_address="127.0.0.1:0")
    server_module = importlib.import_module(f"loopml.services.{service}.server")
    server = server_module.make_server(settings)
    server.stop(grace=0)


def main(argv: list[str] | None = None) -> int:
    services = sys.argv[1:] if argv is None else argv
    if not services:
        print("usage: python -m loopml.runtime.migrate <service>...", file=sys.stderr)
        return 2
    for service in services:
        try:
            migrate_service(service)
        except SettingsError as exc:
            print(f"loopml-{service}: {exc}", file=sys.stderr)
            return 2
        print(f"{service}: migrations applied")
    return 0


if __name__ == "__main__":
    sys.exit(main())
