"""Channels to loopml services: message limits, bearer token, and retries for idempotent calls."""

from __future__ import annotations

import json

import grpc

#: RPC-name prefixes that only read, so a retry cannot apply a change twice.
IDEMPOTENT_PREFIXES = ("Get", "List", "Resolve", "Preview", "Query", "Download", "Watch", "Server", "Model")


def retry_service_config(service_methods: dict[str, list[str]]) -> str:
    """A gRPC service config retrying UNAVAILABLE on the idempotent methods of the given services."""
    names = [
        {"service": service, "method": method}
        for service, methods in service_methods.items()
        for method in methods
        if method.startswith(IDEMPOTENT_PREFIXES) and method != "ModelInfer"
    ]
    if not names:
        return json.dumps({})
    return json.dumps(
        {
            "methodConfig": [
                {
                    "name": names,
                    "retryPolicy": {
                        "maxAttempts": 4,
                        "initialBackoff": "0.1s",
                        "maxBackoff": "2s",
                        "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"],
                    },
                }
            ]
        }
    )


class _TokenInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds `authorization: Bearer <token>` to every call."""

    def __init__(self, token: str):
        self._header = ("authorization", f"Bearer {token}")

    def _details(self, details):
        metadata = [*(details.metadata or ()), self._header]
        return _Details(
            details.method, details.timeout, metadata, details.credentials,
            getattr(details, "wait_for_ready", None), getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)

    def intercept_stream_stream(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)


class _Details(grpc.ClientCallDetails):
    def __init__(self, method, timeout, metadata, credentials, wait_for_ready, compression):
        self.method = method
        self.timeout = timeout
        self.metadata = metadata
        self.credentials = credentials
        self.wait_for_ready = wait_for_ready
        self.compression = compression


def open_channel(
    address: str,
    *,
    token: str = "",
    max_message_bytes: int = 64 * 1024 * 1024,
    service_methods: dict[str, list[str]] | None = None,
) -> grpc.Channel:
    """An insecure channel to `address` with our limits, retries and (optional) token."""
    options = [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", retry_service_config(service_methods or {})),
    ]
    channel = grpc.insecure_channel(address, options=options)
    if token:
        channel = grpc.intercept_channel(channel, _TokenInterceptor(token))
    return channel
