"""Settings of the dataset service (environment variables LOOPML_*)."""

from __future__ import annotations

from typing import ClassVar

from loopml.runtime.settings import ServiceSettings


class DatasetSettings(ServiceSettings):
    service_name: ClassVar[str] = "dataset"

    listen_address: str = "127.0.0.1:50051"
