"""A rolling restart of inference under prediction load loses no request.

Two inference processes (the container entry point, as compose and Kubernetes run it) serve one
registered model behind one SDK client whose address lists both replicas: the channel round-robins
over them and skips a replica whose health is not SERVING. Each replica is restarted in turn with
SIGTERM: it reports NOT_SERVING for LOOPML_SHUTDOWN_DELAY_S while still answering, then finishes
in-flight calls within LOOPML_SHUTDOWN_GRACE_S and exits 0. The load is PredictionService.Predict,
which the client does not retry (it is not in the idempotent list), so any refused call counts.
"""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from loopml.client.config import ClientConfig
from loopml.client.inference import InferenceClient
from loopml.client.registry import RegistryClient
from loopml.modelkit import ColumnSpec, ModelBundle, dump_bundle
from loopml.registry.v1 import model_pb2
from loopml.runtime.healthcheck import check
from tests.deploy import _processes

ROWS = {"x": [0.5, 3.0]}


def _tiny_model() -> ModelBundle:
    frame = pd.DataFrame({"x": np.linspace(0, 4, 40)})
    label = np.where(frame["x"] > 2, "high", "low")
    model = LogisticRegression().fit(frame, label)
    return ModelBundle(model, "binary", [ColumnSpec("x", "numeric", nullable=False)], "level",
                       class_labels=list(model.classes_))


class Load:
    """Threads predicting back to back, counting answers and failures."""

    def __init__(self, client: InferenceClient, threads: int = 2, pause_s: float = 0.005):
        self.client = client
        self.pause_s = pause_s
        self.ok = 0
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self):
        while not self._stop.is_set():
            try:
                predictions = self.client.predict("churn", ROWS, timeout=10).predictions
                with self._lock:
                    if list(predictions) == ["low", "high"]:
                        self.ok += 1
                    else:
                        self.failures.append(f"wrong predictions {list(predictions)}")
            except Exception as error:  # noqa: BLE001 - every failure is counted and shown
                with self._lock:
                    self.failures.append(f"{type(error).__name__}: {error}")
            self._stop.wait(self.pause_s)  # steady load, not a CPU hog on a shared machine

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(15)


def test_restarting_each_inference_replica_under_load_fails_no_request(tmp_path):
    # The registry (inference's health follows it) runs as its own process too, as in production.
    registry = _processes.start("registry", "registry", ["serve"], {
        "LOOPML_LISTEN_ADDRESS": f"127.0.0.1:{_processes.free_port()}",
        "LOOPML_DATA_DIR": str(tmp_path / "registry"), "LOOPML_MIGRATE_ON_START": "true",
    }, tmp_path)
    addresses = [f"127.0.0.1:{_processes.free_port()}" for _ in range(2)]

    def env(n: int) -> dict[str, str]:
        return {
            "LOOPML_LISTEN_ADDRESS": addresses[n],
            "LOOPML_REGISTRY_ADDRESS": registry.address,
            "LOOPML_DATA_DIR": str(tmp_path / f"inference-{n}"),
            "LOOPML_PREDICTION_LOG_ENABLED": "false",
            "LOOPML_SHUTDOWN_DELAY_S": "1.5",
            "LOOPML_SHUTDOWN_GRACE_S": "10",
            "LOOPML_HEALTH_INTERVAL_S": "1",
            "LOOPML_LOG_FORMAT": "text",
        }

    def start(n: int):
        return _processes.start(f"inference-{n}", "inference", ["serve"], env(n), tmp_path)

    def serving(address):
        return check(address, timeout_s=2)

    replicas = []
    try:
        _processes.wait_serving([registry], serving)
        with RegistryClient(ClientConfig(addresses={"registry": registry.address})) as registry_client:
            data, _ = dump_bundle(_tiny_model())
            version = registry_client.upload_version(
                "churn", data, create_model_if_missing=True, flavor=model_pb2.MODEL_FLAVOR_SKLEARN_PIPELINE
            ).version
            registry_client.set_alias("churn", "production", version)
        replicas = [start(0), start(1)]
        _processes.wait_serving(replicas, serving)
        client = InferenceClient(ClientConfig(addresses={"inference": ",".join(addresses)}))
        with client, Load(client) as load:
            for n in range(2):
                before = load.ok
                assert replicas[n].terminate(timeout=30) == 0, replicas[n].log()[-2000:]
                replicas[n] = start(n)
                _processes.wait_serving(replicas, serving)
                # The load's channel reconnects to the new process within its 1 s reconnect backoff.
                threading.Event().wait(2.0)
                assert load.ok > before, "the load kept flowing during the restart"
        assert load.failures == [], (
            f"{len(load.failures)} failed of {load.ok + len(load.failures)}: {sorted(set(load.failures))[:5]}"
        )
        print(f"rolling restart: {load.ok} predictions, {len(load.failures)} failed")
    finally:
        for replica in [*replicas, registry]:
            replica.terminate(timeout=30)
