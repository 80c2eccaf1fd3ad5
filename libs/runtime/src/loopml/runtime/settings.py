"""Settings shared by every service, read once at start-up from `LOOPML_*` environment variables.

Each service subclasses `ServiceSettings` with its own fields and default port. Building the
object validates everything; `load_settings` turns a validation failure into one readable
`SettingsError` that `main()` prints before exiting, so a bad deployment fails fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal, TypeVar

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path.home() / ".loopml"


class SettingsError(Exception):
    """Raised when the environment does not describe a valid configuration."""


class ServiceSettings(BaseSettings):
    """What every loopml service needs. Field `x` is read from `LOOPML_X`."""

    model_config = SettingsConfigDict(env_prefix="LOOPML_", extra="ignore", frozen=True)

    #: Address the gRPC server binds, host:port. Port 0 picks a free port (tests).
    listen_address: str = "127.0.0.1:0"
    #: Folder for embedded-mode files (SQLite databases, local object store, caches).
    data_dir: Path = DEFAULT_DATA_DIR
    #: SQLAlchemy URL of the metadata database; empty means `sqlite:///<data_dir>/<service>.db`.
    database_url: str = ""
    #: Object store: `file:///abs/path` or a path (local folder), or `s3://bucket[/prefix]`.
    #: Empty means the local folder `<data_dir>/objects`.
    object_store_url: str = ""
    s3_endpoint: str = ""
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_secure: bool = False
    s3_region: str = ""
    #: Bearer tokens accepted by the server, comma separated. Empty: auth off (embedded default).
    auth_tokens: str = ""
    #: Token this service sends when it calls other loopml services.
    client_token: str = ""
    #: Largest gRPC message, in bytes, on server and client.
    max_message_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    #: Worker threads of the gRPC server.
    max_workers: int = Field(default=16, gt=0)
    #: Seconds in-flight calls get to finish after SIGTERM.
    shutdown_grace_s: float = Field(default=20.0, ge=0)
    #: Seconds between dependency probes of the health service.
    health_interval_s: float = Field(default=2.0, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    #: Addresses of the other services (host:port), for service-to-service calls.
    dataset_address: str = "127.0.0.1:50051"
    trainer_address: str = "127.0.0.1:50052"
    registry_address: str = "127.0.0.1:50053"
    inference_address: str = "127.0.0.1:50054"
    metrics_address: str = "127.0.0.1:50055"
    #: Deadline, in seconds, of service-to-service calls.
    call_timeout_s: float = Field(default=30.0, gt=0)

    #: Address of the Prometheus /metrics HTTP endpoint, host:port; empty turns it off.
    prometheus_address: str = ""

    #: Short name of the service; subclasses set it (it names the SQLite file and the logs).
    service_name: ClassVar[str] = "loopml"

    @field_validator(
        "listen_address",
        "dataset_address",
        "trainer_address",
        "registry_address",
        "inference_address",
        "metrics_address",
    )
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"expected host:port, got {value!r}")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if value and not value.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:")):
            raise ValueError("expected a sqlite:/// or postgresql:// URL")
        return value

    @field_validator("object_store_url")
    @classmethod
    def _object_store_url(cls, value: str) -> str:
        if value.startswith("s3://") and len(value) <= len("s3://"):
            raise ValueError("s3:// URL needs a bucket")
        return value

    # -- derived values -------------------------------------------------------------------
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / (self.service_name + '.db')}"

    def resolved_object_store_url(self) -> str:
        return self.object_store_url or f"file://{(self.data_dir / 'objects').resolve()}"

    def accepted_tokens(self) -> frozenset[str]:
        return frozenset(t.strip() for t in self.auth_tokens.split(",") if t.strip())

    def open_object_store(self):
        """Build the object store these settings name (does no I/O until first use)."""
        from loopml.runtime.objectstore import open_object_store

        return open_object_store(
            self.resolved_object_store_url(),
            s3_endpoint=self.s3_endpoint or None,
            s3_access_key=self.s3_access_key or None,
            s3_secret_key=self.s3_secret_key or None,
            s3_secure=self.s3_secure,
            s3_region=self.s3_region or None,
        )

    def open_database(self):
        """Build the metadata database these settings name."""
        from loopml.runtime.db import Database

        return Database(self.resolved_database_url())


S = TypeVar("S", bound=ServiceSettings)


def load_settings(cls: type[S], **overrides) -> S:
    """Build `cls` from the environment (plus explicit overrides), or raise SettingsError."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"])
            lines.append(f"  LOOPML_{name.upper()}: {err['msg']}")
        raise SettingsError(f"invalid {cls.__name__}:\n" + "\n".join(lines)) from None
