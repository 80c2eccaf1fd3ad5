"""`loopml up` as a user runs it: one command, five services SERVING, reflection, clean stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from loopml.client.config import SERVICES

LOOPML = str(Path(sys.executable).with_name("loopml"))


def _five_free_ports() -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + 5 > 65535:
            continue
        try:
            sockets = []
            for port in range(base, base + 5):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no five consecutive free ports")


class UpProcess:
    def __init__(self, data_dir: Path, env: dict | None = None):
        self.base_port = _five_free_ports()
        self.process = subprocess.Popen(
            [LOOPML, "--json", "up", "--data-dir", str(data_dir), "--base-port", str(self.base_port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, **(env or {})},
        )
        self.output = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.output += line

    def wait_for_report(self, timeout_s: float) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            start = self.output.find("{")
            if start >= 0:
                try:
                    return json.loads(self.output[start:])
                except json.JSONDecodeError:
                    pass
            if self.process.poll() is not None:
                time.sleep(0.2)
                raise AssertionError(f"loopml up exited: {self.output}")
            time.sleep(0.05)
        raise AssertionError(f"loopml up did not report within {timeout_s}s: {self.output}")

    def stop(self, sig=signal.SIGINT) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=40)


@pytest.fixture
def up(tmp_path):
    started = []

    def start(**env):
        process = UpProcess(tmp_path / "data", env)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.process.poll() is None:
            process.process.kill()


def _service_names(address: str) -> set[str]:
    with grpc.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        responses = stub.ServerReflectionInfo(iter([request]), timeout=5)
        return {s.name for r in responses for s in r.list_services_response.service}


def _children_of(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_up_serves_all_five_and_stops_cleanly(up, tmp_path):
    # The 10-second target is measured by `bench/stack_startup.py`, not asserted here: a loaded CI
    # machine must not turn a speed figure into a red test.
    stack = up()
    report = stack.wait_for_report(timeout_s=90)
    assert report["status"] == "SERVING"
    assert report["seconds_to_serving"] > 0
    assert set(report["addresses"]) == set(SERVICES)
    children = _children_of(stack.process.pid)
    assert len(children) == 5

    names = {name: _service_names(address) for name, address in report["addresses"].items()}
    assert "loopml.dataset.v1.DatasetService" in names["dataset"]
    assert "loopml.trainer.v1.TrainerService" in names["trainer"]
    assert "loopml.registry.v1.RegistryService" in names["registry"]
    assert {"loopml.inference.v1.PredictionService", "inference.GRPCInferenceService"} <= names["inference"]
    assert "loopml.metrics.v1.MetricsService" in names["metrics"]
    assert all("grpc.health.v1.Health" in n for n in names.values())

    # embedded mode: SQLite files and a local folder under the data folder, nothing else
    data = tmp_path / "data"
    assert (data / "dataset.db").exists()

    assert stack.stop(signal.SIGINT) == 0
    for pid in children:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_up_stops_its_services_on_sigterm(up):
    stack = up()
    stack.wait_for_report(timeout_s=90)
    children = _children_of(stack.process.pid)
    stack.stop(signal.SIGTERM)
    time.sleep(0.2)
    assert all(not Path(f"/proc/{pid}").exists() for pid in children)


def test_up_reports_a_service_that_cannot_start(up):
    stack = up(LOOPML_DATABASE_URL="mysql://nope")
    code = stack.process.wait(timeout=30)
    assert code == 1
    assert "exited with code 2" in stack.output


def test_up_names_a_port_that_is_already_taken(tmp_path):
    base = _five_free_ports()
    taken = base + SERVICES.index("inference")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        result = subprocess.run(
            [LOOPML, "up", "--data-dir", str(tmp_path / "data"), "--base-port", str(base)],
            capture_output=True, text=True, timeout=60,
        )
    assert result.returncode == 1
    assert f"port {taken} (inference) already in use" in " ".join(result.stdout.split())
    assert not (tmp_path / "data").exists()  # refused before anything started
