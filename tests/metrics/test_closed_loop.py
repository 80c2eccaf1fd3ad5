"""The closed loop on the embedded backend, all five services real: serve a model, send shifted
inputs and their feedback, the accuracy alert fires, a warm-started retraining on the newest
dataset version runs, the better model is promoted and answers the next prediction."""

from __future__ import annotations

import io
import socket
import time

import numpy as np
import pandas as pd
import pytest

from loopml.client.datasets import DatasetClient
from loopml.client.errors import InvalidArgumentError
from loopml.client.inference import InferenceClient
from loopml.client.registry import RegistryClient
from loopml.client.trainer import TrainerClient
from loopml.common.v1 import metric_pb2, refs_pb2, value_pb2
from loopml.metrics.v1 import alerts_pb2, metrics_pb2
from loopml.services.dataset.server import make_server as make_dataset
from loopml.services.dataset.settings import DatasetSettings
from loopml.services.inference.server import make_server as make_inference
from loopml.services.inference.settings import InferenceSettings
from loopml.services.registry.server import make_server as make_registry
from loopml.services.registry.settings import RegistrySettings
from loopml.services.trainer.server import make_server as make_trainer
from loopml.services.trainer.settings import TrainerSettings
from tests.metrics.helpers import start

ANY = "127.0.0.1:0"


def frame(threshold: float, mean: float, rows: int, seed: int) -> pd.DataFrame:
    """x decides the label at `threshold`; noise columns beside it."""
    rng = np.random.default_rng(seed)
    x = rng.normal(mean, 1.0, rows)
    return pd.DataFrame(
        {
            "x": x.round(4),
            "noise": rng.normal(0, 1, rows).round(4),
            "label": np.where(x > threshold, "yes", "no"),
        }
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def stack(local_backend, serve, tmp_path):
    settings = local_backend.settings
    registry = serve("registry", make_registry, RegistrySettings(**settings, listen_address=ANY))
    dataset = serve(
        "dataset",
        make_dataset,
        DatasetSettings(
            **{**settings, "data_dir": tmp_path / "dataset"},
            listen_address=ANY,
            registry_address=registry.address,
        ),
    )
    trainer = serve(
        "trainer",
        make_trainer,
        TrainerSettings(
            **{**settings, "data_dir": tmp_path / "trainer"},
            listen_address=ANY,
            dataset_address=dataset.address,
            registry_address=registry.address,
            lease_s=5,
        ),
    )
    # inference and metrics call each other: give inference its port up front
    inference_address = f"127.0.0.1:{free_port()}"
    metrics_server, metrics = start(
        serve,
        local_backend,
        registry_address=registry.address,
        dataset_address=dataset.address,
        trainer_address=trainer.address,
        inference_address=inference_address,
        alert_evaluation_interval_s=1.0,
    )
    serve(
        "inference",
        make_inference,
        InferenceSettings(
            **{**settings, "data_dir": tmp_path / "inference"},
            listen_address=inference_address,
            registry_address=registry.address,
            metrics_address=metrics_server.address,
            prediction_log_batch_size=16,
        ),
    )
    config = serve.served.client_config()
    clients = (
        DatasetClient(config),
        TrainerClient(config),
        RegistryClient(config),
        InferenceClient(config),
        metrics,
    )
    yield clients
    for client in clients:
        client.close()


def serve_first_model(datasets, trainer, registry):
    """Dataset version 1 (label: x > 0), a search on it, its model as loop@production."""
    v1_data = frame(threshold=0.0, mean=0.0, rows=400, seed=1)
    uploaded = datasets.upload(
        io.BytesIO(v1_data.to_csv(index=False).encode()),
        name="loop",
        label_column="label",
        filename="loop.csv",
    )
    first = trainer.create_search(
        uploaded.version.ref.dataset_id,
        label="label",
        metric="accuracy",
        time_budget_s=10,  # max_trials ends it sooner; the budget leaves room on a busy box
        max_trials=4,
        seed=1,
        families=["linear"],
        register_model_name="loop",
    )
    first = wait_for(
        lambda: (s := trainer.get_search(first.search_id)).state in (4, 5, 6) and s, 180, "search 1"
    )
    assert first.state == 4, first.failure_reason
    v1 = first.result.registered_model.version
    registry.set_alias("loop", "production", v1)
    return first, v1


def send_live_traffic(inference, metrics, live: pd.DataFrame, v1: int) -> None:
    """Predict `live` in requests of 10 rows, then send every row's ground truth as feedback."""
    request_ids = []
    for start_row in range(0, len(live), 10):
        rows = live.iloc[start_row : start_row + 10]
        answer = inference.predict("loop", {"x": list(rows.x), "noise": list(rows.noise)})
        assert answer.model_version == v1
        request_ids.append((answer.request_id, list(rows.label)))
    feedback = [
        metrics_pb2.Feedback(request_id=rid, row=i, actual=value_pb2.Value(string_value=label))
        for rid, labels in request_ids
        for i, label in enumerate(labels)
    ]
    wait_for(lambda: metrics.record_feedback(feedback).accepted_count == len(live), 30, "predictions logged")


def retrain_rule(name: str, data=alerts_pb2.RETRAIN_DATA_UNSPECIFIED, alias="production"):
    """Online accuracy of loop@production below 0.8 -> retrain (10 s budget, 4 trials), promote at +0.05."""
    rule = alerts_pb2.AlertRule(
        name=name,
        operator=metrics_pb2.COMPARISON_OPERATOR_LESS,
        threshold=0.8,
        performance=alerts_pb2.PerformanceTarget(
            model=refs_pb2.ModelRef(name="loop", alias="production"),
            metric=metric_pb2.METRIC_NAME_ACCURACY,
            min_feedback_count=40,
        ),
        actions=[
            alerts_pb2.AlertAction(
                retrain=alerts_pb2.RetrainAction(
                    model=refs_pb2.ModelRef(name="loop", alias=alias), data=data, min_improvement=0.05
                )
            )
        ],
    )
    rule.window.FromSeconds(3600)
    rule.actions[0].retrain.time_budget.FromSeconds(10)
    return rule


def wait_for_retrain_result(metrics, rule_id: str):
    def retrain_result():
        for alert in metrics.list_alerts(rule_id):
            for result in alert.action_results:
                if result.kind == alerts_pb2.ALERT_ACTION_KIND_RETRAIN and result.status in (
                    alerts_pb2.ACTION_STATUS_SUCCEEDED,
                    alerts_pb2.ACTION_STATUS_FAILED,
                ):
                    return result
        return None

    return wait_for(retrain_result, 300, "the retrain action")


def test_drifted_model_is_retrained_and_promoted(stack):
    datasets, trainer, registry, inference, metrics = stack
    first, v1 = serve_first_model(datasets, trainer, registry)

    # the world changes: the boundary moves to x > 1.5 and inputs shift right; a new dataset version
    v2_data = frame(threshold=1.5, mean=1.5, rows=400, seed=2)
    datasets.upload(
        io.BytesIO(v2_data.to_csv(index=False).encode()),
        name="loop",
        label_column="label",
        filename="loop.csv",
    )

    send_live_traffic(inference, metrics, frame(threshold=1.5, mean=1.5, rows=80, seed=3), v1)
    online = metrics.performance("loop", v1, window_s=3600).versions[0]
    accuracy = {s.metric: s.value for s in online.online_metrics}[metric_pb2.METRIC_NAME_ACCURACY]
    assert accuracy < 0.8 and online.coverage == 1.0

    created = metrics.create_alert_rule(retrain_rule("loop-accuracy"))
    result = wait_for_retrain_result(metrics, created.rule_id)
    assert result.status == alerts_pb2.ACTION_STATUS_SUCCEEDED, result.detail
    outcome = result.retrain
    assert outcome.promoted, result.detail
    assert outcome.new_version > v1 and outcome.candidate_score >= outcome.serving_score + 0.05
    assert "test rows of split" in result.detail  # scored on the same holdout
    new_search = trainer.get_search(outcome.search_id)
    assert list(new_search.spec.warm_start_search_ids) == [first.search_id]
    assert new_search.spec.dataset.version == 2
    assert registry.resolve("loop", alias="production").version == outcome.new_version

    # inference follows the alias: the next prediction is answered by the new model
    probe = frame(threshold=1.5, mean=1.5, rows=5, seed=4)
    answered_by: list[int] = []

    def probe_answer():
        a = inference.predict("loop", {"x": list(probe.x), "noise": list(probe.noise)})
        answered_by.append(a.model_version)
        return a.model_version == outcome.new_version and a

    answer = wait_for(probe_answer, 30, "the new model to answer")
    assert answer.model_version == outcome.new_version

    # the retraining scored both versions on the holdout through inference, but asked it not to
    # log those predictions: the log holds only the live rows and the probes (the log is in
    # order, so once the last probe is there, everything before it is too)
    def predicted_rows(version: int) -> int:
        return metrics.performance("loop", version, window_s=3600).versions[0].prediction_count

    wait_for(lambda: predicted_rows(outcome.new_version) >= 5, 30, "the probe to be logged")
    assert predicted_rows(outcome.new_version) == 5
    assert predicted_rows(v1) == 80 + 5 * answered_by.count(v1)


def test_retrain_on_predictions_with_feedback(stack):
    datasets, trainer, registry, inference, metrics = stack
    first, v1 = serve_first_model(datasets, trainer, registry)
    # no new dataset version this time: the new world is only seen live, with its ground truth
    send_live_traffic(inference, metrics, frame(threshold=1.5, mean=1.5, rows=200, seed=3), v1)

    feedback_data = alerts_pb2.RETRAIN_DATA_PREDICTIONS_WITH_FEEDBACK
    with pytest.raises(InvalidArgumentError) as e:  # checked at creation: no such alias to replace
        metrics.create_alert_rule(retrain_rule("bad", feedback_data, alias="staging"))
    assert e.value.field_violations[0].field == "rule.actions[0].retrain.model"

    created = metrics.create_alert_rule(retrain_rule("loop-feedback", feedback_data))
    result = wait_for_retrain_result(metrics, created.rule_id)
    assert result.status == alerts_pb2.ACTION_STATUS_SUCCEEDED, result.detail
    assert result.retrain.promoted, result.detail
    new_search = trainer.get_search(result.retrain.search_id)
    assert list(new_search.spec.warm_start_search_ids) == [first.search_id]
    # the search ran on a new version of the dataset: the 200 live rows, labelled by feedback
    assert new_search.spec.dataset.dataset_id == first.spec.dataset.dataset_id
    built = datasets.get(new_search.spec.dataset.dataset_id, new_search.spec.dataset.version).version
    assert new_search.spec.dataset.version == 2 and built.row_count == 200
    assert sorted(c.name for c in built.columns) == ["label", "noise", "x"]
    assert registry.resolve("loop", alias="production").version == result.retrain.new_version
