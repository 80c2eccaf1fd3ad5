"""Settings of the registry service (environment variables LOOPML_*)."""

from __future__ import annotations

from typing import ClassVar

from loopml.runtime.settings import ServiceSettings


class RegistrySettings(ServiceSettings):
    service_name: ClassVar[str] = "registry"

    listen_address: str = "127.0.0.1:50053"
