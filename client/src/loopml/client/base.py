"""The base of every per-service client: deadlines on every call, errors made readable."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from loopml.client.channel import open_channel
from loopml.client.config import ClientConfig
from loopml.client.errors import from_rpc_error


class ServiceClient:
    """Wraps one generated stub. Subclasses set `service` (the config key) and `stub_class`.

    Every call gets the config's deadline unless the caller gives `timeout`; a failed call raises
    a `LoopmlClientError` subclass instead of a bare `grpc.RpcError`.
    """

    service: str = ""
    stub_class: type | None = None
    #: Full proto name of the service, e.g. "loopml.dataset.v1.DatasetService" (for retries/health).
    full_name: str = ""

    def __init__(self, config: ClientConfig | None = None, *, channel: grpc.Channel | None = None):
        self.config = config or ClientConfig.from_env()
        self.address = self.config.addresses.get(self.service, "")
        self._channel = channel or open_channel(
            self.address,
            token=self.config.token,
            max_message_bytes=self.config.max_message_bytes,
            service_methods={self.full_name: self._method_names()} if self.full_name else None,
            credentials=self.config.credentials(),
            tls_server_name=self.config.tls_server_name,
        )
        self.stub = self.stub_class(self._channel) if self.stub_class else None
        self._health = health_pb2_grpc.HealthStub(self._channel)

    @classmethod
    def _method_names(cls) -> list[str]:
        return [name for name in dir(cls.stub_class) if name[:1].isupper()] if cls.stub_class else []

    def _timeout(self, timeout: float | None) -> float | None:
        """None means the config's default deadline; 0 or less means no deadline (long watches)."""
        if timeout is None:
            return self.config.timeout_s
        return timeout if timeout > 0 else None

    def call(self, method: str, request, *, timeout: float | None = None):
        """A unary call (or a client-streaming call when `request` is an iterator)."""
        try:
            return getattr(self.stub, method)(request, timeout=self._timeout(timeout))
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    def stream(self, method: str, request, *, timeout: float | None = None) -> Iterator:
        """A server-streaming call; yields responses, raising readable errors."""
        try:
            yield from getattr(self.stub, method)(request, timeout=self._timeout(timeout))
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    def health(self, *, timeout: float = 2.0) -> str:
        """The service's grpc.health.v1 status name: SERVING, NOT_SERVING, ... ("UNREACHABLE" if down)."""
        try:
            response = self._health.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError:
            return "UNREACHABLE"
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
