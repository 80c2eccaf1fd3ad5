"""Settings shared by every service, read once at start-up from `LOOPML_*` environment variables.

Each service subclasses `ServiceSettings` with its own fields and default port. Building the
object validates everything; `load_settings` turns a validation failure into one readable
`SettingsError` that `main()` prints before exiting, so a bad deployment fails fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal, TypeVar

from pydantic import Field, ValidationError, field_validator, model_validator
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
    #: S3/MinIO endpoint host:port, for `s3://` object stores.
    s3_endpoint: str = ""
    #: S3 credentials (a Secret in Kubernetes).
    s3_access_key: str = ""
    s3_secret_key: str = ""
    #: Use HTTPS to the S3 endpoint.
    s3_secure: bool = False
    #: S3 region (empty: the endpoint's default).
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
    #: Seconds a server keeps answering after SIGTERM while already reporting NOT_SERVING, so load
    #: balancers and round-robin clients move away before it stops taking calls (then the grace).
    shutdown_delay_s: float = Field(default=0.0, ge=0)
    #: Seconds between dependency probes of the health service.
    health_interval_s: float = Field(default=2.0, gt=0)
    #: Lowest level logged: DEBUG, INFO, WARNING or ERROR.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: Log lines as `json` (one object a line, with request ids) or `text`.
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

    # -- security and limits (docs/operations.md, "Security model") ---------------------------
    #: File of bearer tokens with roles, one `role:token` per line (roles: read, predict, admin;
    #: a bare token is admin; `#` starts a comment). Adds to `auth_tokens`, which takes the same
    #: entries comma separated.
    auth_tokens_file: str = ""
    #: PEM certificate chain and private key the server presents; set both to serve TLS.
    tls_cert_file: str = ""
    tls_key_file: str = ""
    #: PEM CA bundle client certificates must chain to; set it to require mutual TLS.
    tls_client_ca_file: str = ""
    #: Outgoing calls: PEM CA bundle that verifies the other services (set: calls use TLS).
    tls_ca_file: str = ""
    #: Outgoing calls: certificate and key presented to services that require mutual TLS.
    tls_client_cert_file: str = ""
    tls_client_key_file: str = ""
    #: Outgoing calls: host name expected in the other services' certificates (empty: the address's).
    tls_server_name: str = ""
    #: Calls served at once; more are refused with RESOURCE_EXHAUSTED. 0: no limit.
    max_concurrent_rpcs: int = Field(default=256, ge=0)
    #: Total bytes of one client-streaming call (uploads); more is refused with RESOURCE_EXHAUSTED.
    max_upload_bytes: int = Field(default=20 * 1024**3, gt=0)
    #: Run this service's database migrations when the server is built. Containers set it false
    #: and run `python -m loopml.runtime.migrate <service>` once per release instead.
    migrate_on_start: bool = True

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

    @model_validator(mode="after")
    def _tls_pairs(self):
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("LOOPML_TLS_CERT_FILE and LOOPML_TLS_KEY_FILE must be set together")
        if self.tls_client_ca_file and not self.tls_cert_file:
            raise ValueError("LOOPML_TLS_CLIENT_CA_FILE (mutual TLS) needs LOOPML_TLS_CERT_FILE")
        if bool(self.tls_client_cert_file) != bool(self.tls_client_key_file):
            raise ValueError(
                "LOOPML_TLS_CLIENT_CERT_FILE and LOOPML_TLS_CLIENT_KEY_FILE must be set together"
            )
        for name in ("tls_cert_file", "tls_key_file", "tls_client_ca_file", "tls_ca_file",
                     "tls_client_cert_file", "tls_client_key_file", "auth_tokens_file"):
            path = getattr(self, name)
            if path and not Path(path).is_file():
                raise ValueError(f"LOOPML_{name.upper()}: no such file {path!r}")
        self.token_roles()  # fail fast on an unknown role
        return self

    # -- derived values -------------------------------------------------------------------
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / (self.service_name + '.db')}"

    def resolved_object_store_url(self) -> str:
        return self.object_store_url or f"file://{(self.data_dir / 'objects').resolve()}"

    def accepted_tokens(self) -> frozenset[str]:
        return frozenset(self.token_roles())

    def token_roles(self) -> dict[str, str]:
        """Accepted bearer token -> role, from `auth_tokens` and `auth_tokens_file`."""
        from loopml.runtime.grpcserver.auth import parse_token_entries

        entries = self.auth_tokens.split(",")
        if self.auth_tokens_file:
            entries += Path(self.auth_tokens_file).read_text().splitlines()
        return parse_token_entries(entries)

    def client_config(self, **overrides):
        """The `loopml.client.ClientConfig` for this service's calls to the others: their
        addresses, `client_token`, the outgoing TLS files and `call_timeout_s` as the deadline."""
        from loopml.client.config import ClientConfig

        values = dict(
            addresses={
                "dataset": self.dataset_address,
                "trainer": self.trainer_address,
                "registry": self.registry_address,
                "inference": self.inference_address,
                "metrics": self.metrics_address,
            },
            token=self.client_token,
            timeout_s=self.call_timeout_s,
            max_message_bytes=self.max_message_bytes,
            tls=bool(self.tls_ca_file),
            tls_ca_file=self.tls_ca_file,
            tls_client_cert_file=self.tls_client_cert_file,
            tls_client_key_file=self.tls_client_key_file,
            tls_server_name=self.tls_server_name,
        )
        values.update(overrides)
        return ClientConfig(**values)

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
            lines.append(f"  LOOPML_{name.upper()}: {err['msg']}" if name else f"  {err['msg']}")
        raise SettingsError(f"invalid {cls.__name__}:\n" + "\n".join(lines)) from None
