"""The `main()` every service entry point shares: settings, logging, serve until SIGTERM."""

from __future__ import annotations

import sys
from collections.abc import Callable

from loopml.runtime.grpcserver import ServiceServer, configure_logging
from loopml.runtime.settings import ServiceSettings, SettingsError, load_settings


def run_service(settings_class: type[ServiceSettings], make_server: Callable[..., ServiceServer]) -> None:
    """Build settings from the environment (exit 2 with a clear message if invalid), then serve."""
    try:
        settings = load_settings(settings_class)
    except SettingsError as exc:
        print(f"loopml-{settings_class.service_name}: {exc}", file=sys.stderr)
        sys.exit(2)
    configure_logging(settings_class.service_name, settings.log_level, settings.log_format)
    make_server(settings).serve_forever()
