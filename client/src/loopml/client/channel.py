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


def channel_target(address: str) -> str:
    """The gRPC target for `address`: `host:port`, or several `ip:port` separated by commas
    (client-side round robin over replicas, e.g. two inference processes on one host)."""
    if "," not in address:
        return address
    parts = [part.strip() for part in address.split(",") if part.strip()]
    return "ipv4:" + ",".join(parts)


def _balanced_service_config(config: str) -> str:
    """Round robin over the replicas, skipping those whose health is not SERVING (draining)."""
    values = json.loads(config)
    values["loadBalancingConfig"] = [{"round_robin": {}}]
    values["healthCheckConfig"] = {"serviceName": ""}
    return json.dumps(values)


def tls_credentials(
    ca_file: str = "", cert_file: str = "", key_file: str = ""
) -> grpc.ChannelCredentials:
    """TLS channel credentials: `ca_file` verifies the server (empty: the system's roots), the
    certificate and key (both or neither) are presented for mutual TLS."""
    if bool(cert_file) != bool(key_file):
        raise ValueError("a TLS client certificate needs its key (and the key its certificate)")

    def read(path: str) -> bytes | None:
        with open(path, "rb") as handle:
            return handle.read()

    return grpc.ssl_channel_credentials(
        root_certificates=read(ca_file) if ca_file else None,
        private_key=read(key_file) if key_file else None,
        certificate_chain=read(cert_file) if cert_file else None,
    )


def open_channel(
    address: str,
    *,
    token: str = "",
    max_message_bytes: int = 64 * 1024 * 1024,
    service_methods: dict[str, list[str]] | None = None,
    credentials: grpc.ChannelCredentials | None = None,
    tls_server_name: str = "",
) -> grpc.Channel:
    """A channel to `address` with our limits, retries and (optional) token; TLS when
    `credentials` are given (see `tls_credentials`), plaintext otherwise."""
    config = retry_service_config(service_methods or {})
    if "," in address:
        config = _balanced_service_config(config)
    options = [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", config),
    ]
    if "," in address:  # replicas come back quickly after a restart: retry them soon
        options += [("grpc.initial_reconnect_backoff_ms", 200), ("grpc.max_reconnect_backoff_ms", 1000)]
    if tls_server_name:
        options.append(("grpc.ssl_target_name_override", tls_server_name))
    target = channel_target(address)
    if credentials is None:
        channel = grpc.insecure_channel(target, options=options)
    else:
        channel = grpc.secure_channel(target, credentials, options=options)
    if token:
        channel = grpc.intercept_channel(channel, _TokenInterceptor(token))
    return channel
