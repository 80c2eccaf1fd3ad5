"""Where the services are and how to reach them; read from the same LOOPML_* names as the servers."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

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

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> "ClientConfig":
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
        )
        if overrides:
            values = {**config.__dict__, **{k: v for k, v in overrides.items() if v is not None}}
            config = cls(**values)
        return config

    def with_address(self, service: str, address: str) -> "ClientConfig":
        return ClientConfig({**self.addresses, service: address}, self.token, self.timeout_s,
                            self.max_message_bytes)
