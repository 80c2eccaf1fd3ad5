"""`python -m loopml.runtime.healthcheck`: exit 0 when the local service answers SERVING.

The container health check (compose) and an exec probe (Kubernetes with TLS in the pod). It reads
the same LOOPML_* variables as the service: the port of LOOPML_LISTEN_ADDRESS, and TLS when the
server has a certificate (verified with LOOPML_TLS_CA_FILE, client certificate from
LOOPML_TLS_CLIENT_CERT_FILE/KEY_FILE for mutual TLS). Health needs no token.
"""

from __future__ import annotations

import argparse
import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def probe_address(listen_address: str) -> str:
    """Where to reach a server bound to `listen_address` from inside its own container."""
    host, _, port = listen_address.rpartition(":")
    if host in ("", "0.0.0.0", "[::]", "::"):
        host = "127.0.0.1"
    return f"{host}:{port}"


def check(address: str, *, service: str = "", timeout_s: float = 3.0, env=None, server_name: str = "") -> str:
    """The health status name of `address` ("UNREACHABLE" when it does not answer). With TLS,
    `server_name` (default LOOPML_TLS_SERVER_NAME) is the name expected in the certificate."""
    env = os.environ if env is None else env
    cert = env.get("LOOPML_TLS_CERT_FILE", "")
    options = []
    server_name = server_name or env.get("LOOPML_TLS_SERVER_NAME", "")
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    if cert:

        def read(name: str) -> bytes | None:
            path = env.get(name, "")
            if not path:
                return None
            with open(path, "rb") as handle:
                return handle.read()

        credentials = grpc.ssl_channel_credentials(
            root_certificates=read("LOOPML_TLS_CA_FILE"),
            private_key=read("LOOPML_TLS_CLIENT_KEY_FILE"),
            certificate_chain=read("LOOPML_TLS_CLIENT_CERT_FILE"),
        )
        channel = grpc.secure_channel(address, credentials, options=options)
    else:
        channel = grpc.insecure_channel(address, options=options)
    with channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout_s
            )
        except grpc.RpcError:
            return "UNREACHABLE"
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loopml.runtime.healthcheck", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--address", help="host:port (default: from LOOPML_LISTEN_ADDRESS)")
    parser.add_argument("--service", default="", help="service name to check (default: the whole server)")
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--server-name", default="", help="TLS: name in the server's certificate")
    args = parser.parse_args(argv)
    address = args.address or probe_address(os.environ.get("LOOPML_LISTEN_ADDRESS", "127.0.0.1:0"))
    status = check(address, service=args.service, timeout_s=args.timeout, server_name=args.server_name)
    print(f"{address} {status}")
    return 0 if status == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main())
