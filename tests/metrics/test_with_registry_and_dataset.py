"""The metrics service with the real registry and dataset services: training metrics next to the
online ones, and a drift report against the dataset profile of the version's training split."""

from __future__ import annotations

import time

import numpy as np
import pytest

from loopml.client.datasets import DatasetClient
from loopml.client.errors import InvalidArgumentError
from loopml.client.registry import RegistryClient
from loopml.common.v1 import metric_pb2, model_pb2, schema_pb2, value_pb2
from loopml.metrics.v1 import metrics_pb2
from loopml.services.dataset.server import make_server as make_dataset
from loopml.services.dataset.settings import DatasetSettings
from loopml.services.registry.server import make_server as make_registry
from loopml.services.registry.settings import RegistrySettings
from tests.metrics.helpers import feedback, record, start

NOW = time.time()


@pytest.fixture
def services(backend, serve, tmp_path):
    registry = serve(
        "registry", make_registry, RegistrySettings(**backend.settings, listen_address="127.0.0.1:0")
    )
    dataset = serve(
        "dataset",
        make_dataset,
        DatasetSettings(
            **{**backend.settings, "data_dir": tmp_path / "dataset"},
            listen_address="127.0.0.1:0",
            registry_address=registry.address,
        ),
    )
    _, metrics = start(serve, backend, registry_address=registry.address, dataset_address=dataset.address)
    config = serve.served.client_config()
    with RegistryClient(config) as reg, DatasetClient(config) as ds:
        yield reg, ds, metrics
    metrics.close()


def _train_csv(path, rows=400):
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, rows)
    colour = rng.choice(["red", "blue"], rows)
    label = np.where(x > 0, "yes", "no")
    path.write_text(
        "x,colour,label\n" + "".join(f"{a:.5f},{c},{b}\n" for a, c, b in zip(x, colour, label, strict=True))
    )
    return path


def _wait_ready(ds, dataset_id):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        version = ds.get(dataset_id).version
        if version.state == 2:  # READY
            return version
        time.sleep(0.2)
    raise AssertionError("dataset version not READY")


def test_training_metrics_and_drift_against_the_training_split(services, tmp_path):
    reg, ds, metrics = services
    uploaded = ds.upload(_train_csv(tmp_path / "train.csv"), name="loans", label_column="label")
    dataset_id = uploaded.dataset.dataset_id
    version = _wait_ready(ds, dataset_id)
    split = ds.create_split(dataset_id, version.ref.version, train=0.75, test=0.25, seed=1).split
    signature = model_pb2.ModelSignature(
        inputs=[
            model_pb2.SignatureColumn(name="x", type=schema_pb2.COLUMN_TYPE_NUMERIC),
            model_pb2.SignatureColumn(
                name="colour",
                type=schema_pb2.COLUMN_TYPE_CATEGORICAL,
                categories=[value_pb2.Value(string_value=c) for c in ("red", "blue")],
            ),
        ],
        class_labels=[value_pb2.Value(string_value=c) for c in ("no", "yes")],
        task=schema_pb2.TASK_TYPE_BINARY,
        label_column="label",
        label_type=schema_pb2.COLUMN_TYPE_CATEGORICAL,
    )
    test_auc = metric_pb2.MetricScore(
        metric=metric_pb2.METRIC_NAME_ROC_AUC, value=0.97, evaluation_set=metric_pb2.EVALUATION_SET_TEST
    )
    mv = reg.upload_version(
        "loans",
        b"not a real model",
        create_model_if_missing=True,
        signature=signature,
        metrics=[test_auc],
        lineage={
            "dataset_id": dataset_id,
            "dataset_version": version.ref.version,
            "split_id": split.split_id,
        },
    )
    reg.set_alias("loans", "production", mv.version)

    rng = np.random.default_rng(1)
    xs = rng.normal(2.0, 1, 300)  # shifted to the right of the training data
    metrics.record_predictions(
        [
            record(
                f"l{i}",
                "loans",
                mv.version,
                {"x": [float(xs[i])], "colour": ["green" if i % 3 else "red"]},
                ["yes" if xs[i] > 0 else "no"],
                at=NOW - 60,
                probabilities=[[0.2, 0.8]],
                classes=["no", "yes"],
            )
            for i in range(300)
        ]
    )
    metrics.record_feedback([feedback(f"l{i}", 0, "yes") for i in range(100)])

    perf = metrics.performance("loans", window_s=3600)
    v = perf.versions[0]
    assert v.training_metrics_note == "" and list(v.training_metrics) == [test_auc]
    assert v.feedback_count == 100

    report = metrics.drift("loans", window_s=3600)  # version 0: the production alias
    assert report.model_version == mv.version
    assert (report.reference_dataset.dataset_id, report.reference_split_id) == (dataset_id, split.split_id)
    assert report.reference_row_count == 300  # the train part of the 75/25 split
    by_name = {f.feature: f for f in report.features}
    assert by_name["x"].severity == metrics_pb2.DRIFT_SEVERITY_DRIFT and by_name["x"].ks_statistic > 0.5
    unseen = [b for b in by_name["colour"].bins if b.unseen][0]
    assert unseen.live_fraction == pytest.approx(200 / 300)  # "green" was never seen at training
    assert report.prediction_drift.feature == "prediction"

    # a custom metric may use the classes of the registry signature
    with pytest.raises(InvalidArgumentError):
        metrics.create_custom_metric(
            metrics_pb2.CustomMetric(
                name="p_maybe",
                model_name="loans",
                aggregation=metrics_pb2.CUSTOM_AGGREGATION_AVG,
                field="probability.maybe",
            )
        )
    created = metrics.create_custom_metric(
        metrics_pb2.CustomMetric(
            name="p_yes",
            model_name="loans",
            aggregation=metrics_pb2.CUSTOM_AGGREGATION_AVG,
            field="probability.yes",
        )
    )
    assert created.field == "probability.yes"
