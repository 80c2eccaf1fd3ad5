"""Settings of the inference service (environment variables LOOPML_*)."""

from __future__ import annotations

from typing import ClassVar

from loopml.runtime.settings import ServiceSettings


class InferenceSettings(ServiceSettings):
    service_name: ClassVar[str] = "inference"

    listen_address: str = "127.0.0.1:50054"
