"""Settings of the metrics service (environment variables LOOPML_*)."""

from __future__ import annotations

from typing import ClassVar

from loopml.runtime.settings import ServiceSettings


class MetricsSettings(ServiceSettings):
    service_name: ClassVar[str] = "metrics"

    listen_address: str = "127.0.0.1:50055"
