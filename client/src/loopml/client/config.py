"""Where the services are and how to reach them; read from the same LOOPML_* names as the servers."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

DEFAULT_PORTS = {"dataset": 50051, "trainer": 50052, "registry": 50053, "inference": 50054, "metrics": 50055}
SERVICES = tuple(DEFAULT_PORTS)


@dataclass(frozen=True)
class ClientConfig:
    """Addresses (host:port) of the five services, the bearer token, and the default deadline."""

    addresses: dict[str, str] = field(
        default_factory=lambda: {name: f"127.0.0.1:{port}" for name, port in DEFAULT_PORTS.items()}
    )
    token: str = ""
    timeout_s: float = 30.0
    max_message_bytes: int = 64 * 1024 * 1024
    #: TLS to the services (LOOPML_TLS=true, or implied by a CA file): verify them with
    #: `tls_ca_file` (empty: system roots); present a client certificate for mutual TLS.
    tls: bool = False
    tls_ca_file: str = ""
    tls_client_cert_file: str = ""
    tls_client_key_file: str = ""
    #: Host name expected in the services' certificates, when it differs from the address's.
    tls_server_name: str = ""

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> ClientConfig:
        env = os.environ if environ is None else environ
        base = cls()
        addresses = {
            name: env.get(f"LOOPML_{name.upper()}_ADDRESS", base.addresses[name]) for name in SERVICES
        }
        config = cls(
            addresses=addresses,
            token=env.get("LOOPML_TOKEN", env.get("LOOPML_CLIENT_TOKEN", "")),
            timeout_s=float(env.get("LOOPML_TIMEOUT_S", base.timeout_s)),
            max_message_bytes=int(env.get("LOOPML_MAX_MESSAGE_BYTES", base.max_message_bytes)),
            tls=env.get("LOOPML_TLS", "").strip().lower() in ("1", "true", "yes", "on")
            or bool(env.get("LOOPML_TLS_CA_FILE")),
            tls_ca_file=env.get("LOOPML_TLS_CA_FILE", ""),
            tls_client_cert_file=env.get("LOOPML_TLS_CLIENT_CERT_FILE", ""),
            tls_client_key_file=env.get("LOOPML_TLS_CLIENT_KEY_FILE", ""),
            tls_server_name=env.get("LOOPML_TLS_SERVER_NAME", ""),
        )
        if overrides:
            values = {**config.__dict__, **{k: v for k, v in overrides.items() if v is not None}}
            config = cls(**values)
        return config

    def with_address(self, service: str, address: str) -> ClientConfig:
        return replace(self, addresses={**self.addresses, service: address})

    def credentials(self):
        """gRPC channel credentials for TLS, or None for plaintext."""
        if not (self.tls or self.tls_ca_file or self.tls_client_cert_file):
            return None
        from loopml.client.channel import tls_credentials

        return tls_credentials(self.tls_ca_file, self.tls_client_cert_file, self.tls_client_key_file)
