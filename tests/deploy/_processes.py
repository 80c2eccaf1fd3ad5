"""Run compose services as local processes: each service's own entry point and command, with the
compose file's own environment, host names mapped to 127.0.0.1."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.deploy._repo import image_entrypoint, image_env
from tests.fixtures.s3 import free_port


@dataclass
class LocalService:
    name: str
    process: subprocess.Popen
    address: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def terminate(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def map_hosts(value: str, hosts: dict[str, str]) -> str:
    """Replace `name:port` of a compose service by the local address standing in for it."""
    for host_port, local in hosts.items():
        value = re.sub(rf"(?<![\w.-]){re.escape(host_port)}(?![\w])", local, value)
    return value


def command_argv(service: str, command: list[str]) -> list[str]:
    """The image's ENTRYPOINT followed by the compose command, run by this interpreter."""
    argv = [*image_entrypoint(service), *command]
    return [sys.executable if part == "python" else part for part in argv]


def start(name: str, service: str, command: list[str], env: dict[str, str], log_dir: Path) -> LocalService:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    full_env = {**base, **image_env(service), **env}
    full_env["PATH"] = os.environ["PATH"]  # the image's PATH names /opt/loopml/bin
    log_path = log_dir / f"{name}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command_argv(service, command), env=full_env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return LocalService(name, process, env.get("LOOPML_LISTEN_ADDRESS", ""), log_path)


def wait_serving(services: list[LocalService], health, timeout_s: float = 90.0) -> dict[str, str]:
    """Poll `health(address)` until every service is SERVING; fail with the logs of the laggards."""
    deadline = time.monotonic() + timeout_s
    status: dict[str, str] = {}
    while True:
        for service in services:
            if service.process.poll() is not None:
                code = service.process.returncode
                raise AssertionError(f"{service.name} exited ({code}):\n{service.log()}")
            status[service.name] = health(service.address)
        if all(s == "SERVING" for s in status.values()):
            return status
        if time.monotonic() > deadline:
            lagging = [s for s in services if status[s.name] != "SERVING"]
            logs = "\n".join(f"--- {s.name}\n{s.log()[-3000:]}" for s in lagging)
            raise AssertionError(f"not SERVING after {timeout_s}s: {status}\n{logs}")
        time.sleep(0.3)


__all__ = ["LocalService", "command_argv", "free_port", "map_hosts", "start", "wait_serving"]
