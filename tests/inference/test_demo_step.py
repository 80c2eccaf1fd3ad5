"""The demo's serve_and_predict step says plainly what it needs when the search step left no model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from rich.console import Console

STEPS = Path(__file__).resolve().parents[2] / "scripts" / "demo_steps.py"


def test_serve_and_predict_needs_the_search_step():
    spec = importlib.util.spec_from_file_location("demo_steps_under_test", STEPS)
    steps = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(steps)
    console = Console(record=True, width=200)
    state: dict = {"addresses": {}}
    steps.serve_and_predict(state, console)
    text = console.export_text()
    assert "needs the model the search step registers" in text
    assert "prediction" not in state


def test_serve_and_predict_with_real_services(serve, local_backend, tmp_path, bundles):
    import time

    from loopml.client.datasets import DatasetClient
    from loopml.client.errors import LoopmlClientError
    from loopml.client.registry import RegistryClient
    from loopml.common.v1 import model_pb2 as common_model_pb2
    from loopml.modelkit import dump_bundle
    from loopml.services.dataset.server import make_server as make_dataset
    from loopml.services.dataset.settings import DatasetSettings
    from loopml.services.inference.server import make_server as make_inference
    from loopml.services.inference.settings import InferenceSettings
    from loopml.services.registry.server import make_server as make_registry
    from loopml.services.registry.settings import RegistrySettings
    from tests.inference import models

    base = {**local_backend.settings, "listen_address": "127.0.0.1:0"}
    serve("dataset", make_dataset, DatasetSettings(**base))
    registry_server = serve("registry", make_registry, RegistrySettings(**base))
    serve(
        "inference",
        make_inference,
        InferenceSettings(
            **{**base, "data_dir": tmp_path / "inference"},
            registry_address=registry_server.address,
            prediction_log_enabled=False,
        ),
    )
    config = serve.served.client_config()

    frame, label = models.training_frame(30)
    frame["buys"] = label
    csv = tmp_path / "churn.csv"
    frame.to_csv(csv, index=False)
    with DatasetClient(config) as datasets:
        uploaded = datasets.upload(csv, name="churn", label_column="buys")
        ref = uploaded.version.ref
        deadline = time.monotonic() + 60
        while True:  # the version is processed in the background
            try:
                datasets.preview(ref.dataset_id, ref.version, rows=1)
                break
            except LoopmlClientError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    signature = common_model_pb2.ModelSignature(
        inputs=[common_model_pb2.SignatureColumn(name=n) for n in ("age", "income", "city")],
        label_column="buys",
    )
    with RegistryClient(config) as registry:
        version = registry.upload_version(
            "churn",
            dump_bundle(bundles["classifier"])[0],
            create_model_if_missing=True,
            signature=signature,
            lineage={"dataset_id": ref.dataset_id, "dataset_version": ref.version},
        ).version

    spec = importlib.util.spec_from_file_location("demo_steps_real", STEPS)
    steps = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(steps)
    console = Console(record=True, width=200)
    state = {"addresses": serve.served.addresses, "model": {"name": "churn", "version": version}}
    steps.serve_and_predict(state, console)
    text = console.export_text()
    assert f"answered by churn v{version}" in text and "row 4:" in text
    assert state["prediction"]["model_version"] == version and len(state["prediction"]["actual"]) == 5
