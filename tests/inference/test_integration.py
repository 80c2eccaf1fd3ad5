"""Inference with the real registry and metrics services, over both storage backends: a registered
model served by alias, hot-reloaded when the alias moves, predictions logged to the metrics service."""

from __future__ import annotations

import threading
import time

import pytest

from loopml.client.errors import LoopmlClientError
from loopml.client.inference import InferenceClient
from loopml.client.metrics import MetricsClient
from loopml.client.registry import RegistryClient
from loopml.metrics.v1 import metrics_pb2
from loopml.modelkit import dump_bundle
from loopml.registry.v1 import model_pb2
from loopml.services.inference.server import make_server as make_inference
from loopml.services.inference.settings import InferenceSettings
from loopml.services.metrics.server import make_server as make_metrics
from loopml.services.metrics.settings import MetricsSettings
from loopml.services.registry.server import make_server as make_registry
from loopml.services.registry.settings import RegistrySettings
from tests.inference import models


@pytest.fixture
def stack(serve, backend, tmp_path):
    registry = serve(
        "registry",
        make_registry,
        RegistrySettings(**backend.settings, listen_address="127.0.0.1:0", watch_poll_interval_s=0.1),
    )
    metrics = serve(
        "metrics",
        make_metrics,
        MetricsSettings(**backend.settings, listen_address="127.0.0.1:0", registry_address=registry.address),
    )
    serve(
        "inference",
        make_inference,
        InferenceSettings(
            **{**backend.settings, "data_dir": tmp_path / "inference"},
            listen_address="127.0.0.1:0",
            registry_address=registry.address,
            metrics_address=metrics.address,
        ),
    )
    config = serve.served.client_config()
    clients = RegistryClient(config), InferenceClient(config), MetricsClient(config)
    yield clients
    for client in clients:
        client.close()


def _upload(registry: RegistryClient, bundle) -> int:
    data, _ = dump_bundle(bundle)
    return registry.upload_version(
        "churn", data, create_model_if_missing=True, flavor=model_pb2.MODEL_FLAVOR_SKLEARN_PIPELINE
    ).version


def test_served_by_alias_reloaded_without_failures_and_logged(stack, bundles):
    registry, inference, metrics = stack
    v1 = _upload(registry, bundles["classifier"])
    registry.set_alias("churn", "production", v1)
    first = inference.predict("churn", models.rows())
    assert (first.model_name, first.model_version) == ("churn", v1)
    assert first.predictions == list(bundles["classifier"].predict(models.rows()).predictions)

    v2 = _upload(registry, bundles["flipped"])
    failures, versions, stop = [], [], threading.Event()

    def steady_load():
        while not stop.is_set():
            try:
                versions.append(inference.predict("churn", models.rows(2)).model_version)
            except Exception as exc:  # noqa: BLE001 - collected and asserted empty
                failures.append(exc)

    threads = [threading.Thread(target=steady_load) for _ in range(3)]
    for thread in threads:
        thread.start()
    _wait_for(lambda: len(versions) > 10)
    time.sleep(0.5)  # the watch is open (it starts with the first load)
    registry.set_alias("churn", "production", v2)
    _wait_for(lambda: versions[-10:] == [v2] * 10)
    stop.set()
    for thread in threads:
        thread.join()
    assert failures == []
    assert set(versions) == {v1, v2}

    # the prediction log reached the metrics service: feedback joins on the request id
    def joined() -> bool:
        feedback = metrics_pb2.Feedback(request_id=first.request_id, row=0)
        feedback.actual.string_value = "yes"
        return metrics.record_feedback([feedback]).accepted_count == 1

    _wait_for(joined)


_TRITON = """
import sys
import numpy as np
import tritonclient.grpc as tc

client = tc.InferenceServerClient(sys.argv[1])
inputs = []
columns = [("age", "FP64", [30.0]), ("income", "FP64", [80.0]), ("city", "BYTES", [b"paris"])]
for name, datatype, values in columns:
    tensor = tc.InferInput(name, [1], datatype)
    tensor.set_data_from_numpy(np.array(values, dtype=object if datatype == "BYTES" else np.float64))
    inputs.append(tensor)
result = client.infer("churn", inputs)
print(result.get_response().model_version, result.as_numpy("predictions")[0].decode())
"""


def test_registered_model_through_tritonclient(stack, bundles, serve):
    import subprocess

    from tests.inference.test_oip import TRITON_PYTHON

    registry, _, _ = stack
    v1 = _upload(registry, bundles["classifier"])
    registry.set_alias("churn", "production", v1)
    address = serve.served.addresses["inference"]
    run = subprocess.run(
        [str(TRITON_PYTHON), "-c", _TRITON, address], capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr
    want = bundles["classifier"].predict({"age": [30.0], "income": [80.0], "city": ["paris"]}).predictions[0]
    assert run.stdout.split() == [str(v1), want]


def test_unknown_names_through_the_registry_are_not_found(stack, bundles):
    registry, inference, _ = stack
    v1 = _upload(registry, bundles["classifier"])
    registry.set_alias("churn", "production", v1)
    for options in (
        {"model": "ghost"},
        {"model": "churn", "alias": "staging"},
        {"model": "churn", "version": 9},
    ):
        name = options.pop("model")
        with pytest.raises(LoopmlClientError) as error:
            inference.predict(name, models.rows(), **options)
        assert error.value.code == "NOT_FOUND"
    assert inference.predict("churn", models.rows(), latest=True).model_version == v1


def _wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)
