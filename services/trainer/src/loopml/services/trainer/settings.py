"""Settings of the trainer service (environment variables LOOPML_*)."""

from __future__ import annotations

from typing import ClassVar

from loopml.runtime.settings import ServiceSettings


class TrainerSettings(ServiceSettings):
    service_name: ClassVar[str] = "trainer"

    listen_address: str = "127.0.0.1:50052"
