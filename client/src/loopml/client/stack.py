"""`loopml up`: run all five services on one machine and supervise them.

Each service runs as its own process (`python -m loopml.services.<name>`), exactly as it runs in
its container, so the embedded stack exercises the production code paths. With no settings it uses
SQLite files and a local object folder under the data folder; given LOOPML_DATABASE_URL /
LOOPML_OBJECT_STORE_URL (PostgreSQL, s3://) it runs the production wiring instead.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from loopml.client.base import ServiceClient
from loopml.client.config import DEFAULT_PORTS, SERVICES, ClientConfig


class StackError(RuntimeError):
    pass


def free_ports(host: str = "127.0.0.1") -> dict[str, int]:
    """A free port per service, chosen by the operating system (for a throwaway stack, e.g. the
    demo, which must not depend on the well-known ports being free)."""
    sockets = []
    try:
        for _ in SERVICES:
            sock = socket.socket()
            sockets.append(sock)
            sock.bind((host, 0))
        return {name: sock.getsockname()[1] for name, sock in zip(SERVICES, sockets, strict=True)}
    finally:
        for sock in sockets:
            sock.close()


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC binds
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


@dataclass
class RunningService:
    name: str
    address: str
    process: subprocess.Popen


class Stack:
    """Starts, health-checks and stops the five service processes."""

    def __init__(self, data_dir: Path, *, host: str = "127.0.0.1", base_port: int | None = None,
                 ports: dict[str, int] | None = None, env: dict[str, str] | None = None,
                 log_dir: Path | None = None):
        self.data_dir = data_dir
        self.host = host
        if ports is None:
            ports = {name: base_port + i for i, name in enumerate(SERVICES)} if base_port else DEFAULT_PORTS
        self.ports = dict(ports)
        self.extra_env = dict(env or {})
        self.log_dir = log_dir or data_dir / "logs"
        self.services: list[RunningService] = []

    @property
    def addresses(self) -> dict[str, str]:
        return {name: f"{self.host}:{port}" for name, port in self.ports.items()}

    def environment(self) -> dict[str, str]:
        """The environment every service process gets: addresses of all, the data folder."""
        env = {**os.environ, **self.extra_env}
        env["LOOPML_DATA_DIR"] = str(self.data_dir)
        for name, address in self.addresses.items():
            env[f"LOOPML_{name.upper()}_ADDRESS"] = address
        return env

    def start(self) -> None:
        missing = [n for n in SERVICES if importlib.util.find_spec(f"loopml.services.{n}") is None]
        if missing:
            raise StackError(f"services not installed in this environment: {', '.join(missing)}")
        busy = [f"{port} ({name})" for name, port in self.ports.items() if _port_in_use(self.host, port)]
        if busy:
            raise StackError(
                f"port {', '.join(busy)} already in use on {self.host}; choose other ports (--base-port)"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        base_env = self.environment()
        for name, address in self.addresses.items():
            env = {**base_env, "LOOPML_LISTEN_ADDRESS": address}
            log = open(self.log_dir / f"{name}.log", "ab")
            process = subprocess.Popen(
                [sys.executable, "-m", f"loopml.services.{name}"],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
            log.close()
            self.services.append(RunningService(name, address, process))

    def wait_until_serving(self, timeout_s: float = 30.0) -> dict[str, str]:
        """Block until every service reports SERVING; raise StackError naming the laggards."""
        config = ClientConfig(addresses=self.addresses, token=self.extra_env.get("LOOPML_CLIENT_TOKEN", ""))
        clients = {s.name: _HealthOnly(config, s.name) for s in self.services}
        deadline = time.monotonic() + timeout_s
        status: dict[str, str] = {}
        try:
            while True:
                for service in self.services:
                    code = service.process.poll()
                    if code is not None:
                        log = self.log_dir / f"{service.name}.log"
                        raise StackError(f"{service.name} exited with code {code}; see {log}")
                    status[service.name] = clients[service.name].health(timeout=1.0)
                if all(s == "SERVING" for s in status.values()):
                    return status
                if time.monotonic() > deadline:
                    lagging = {n: s for n, s in status.items() if s != "SERVING"}
                    raise StackError(f"not SERVING after {timeout_s:.0f}s: {lagging}")
                time.sleep(0.2)
        finally:
            for client in clients.values():
                client.close()

    def first_exited(self) -> RunningService | None:
        return next((s for s in self.services if s.process.poll() is not None), None)

    def stop(self, grace_s: float = 25.0) -> None:
        """SIGTERM every service (they drain and stop), then SIGKILL what is left after `grace_s`."""
        for service in self.services:
            if service.process.poll() is None:
                service.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for service in self.services:
            try:
                service.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                service.process.kill()
                service.process.wait()
        self.services.clear()


class _HealthOnly(ServiceClient):
    def __init__(self, config: ClientConfig, service: str):
        self.service = service
        super().__init__(config)
