"""Settings of the inference service (environment variables LOOPML_*)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from loopml.runtime.settings import ServiceSettings


class InferenceSettings(ServiceSettings):
    service_name: ClassVar[str] = "inference"

    listen_address: str = "127.0.0.1:50054"
    #: Folder of the local artifact cache; empty: `<data_dir>/inference-cache`.
    model_cache_dir: Path | None = None
    #: Memory cap of all loaded models, in bytes (each model measured as it loads); 0: none.
    model_memory_limit_bytes: int = Field(default=0, ge=0)
    #: Most rows one prediction request may carry; 0: no limit.
    max_request_rows: int = Field(default=100_000, ge=0)
    #: Dynamic batching defaults (LoadModel may override them per model).
    batching_enabled: bool = False
    batch_max_size: int = Field(default=64, gt=0)
    batch_max_delay_ms: float = Field(default=2.0, ge=0)
    #: Follow the registry's events (hot reload when an alias moves).
    follow_registry_events: bool = True
    #: Prediction log to the metrics service: on/off, queue capacity (records), records per call.
    prediction_log_enabled: bool = True
    prediction_log_capacity: int = Field(default=10_000, gt=0)
    prediction_log_batch_size: int = Field(default=256, gt=0)

    def resolved_cache_dir(self) -> Path:
        return self.model_cache_dir or self.data_dir / "inference-cache"
