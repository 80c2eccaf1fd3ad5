"""PredictionService over a real gRPC server: Predict, PredictStream, Load/Unload/List, canary, hot reload."""

from __future__ import annotations

import threading
import time
import urllib.request

import numpy as np
import pytest

from loopml.client.errors import LoopmlClientError
from loopml.inference.v1 import prediction_service_pb2 as pb
from tests.inference import models


def test_predict_named_columns_with_strings_and_missing_values(inference, bundles):
    _, client = inference
    rows = [
        {"age": 30.0, "income": 80.0, "city": "paris"},
        {"age": None, "income": 10.0, "city": None},
        {"age": 55, "income": 45.5, "city": "lyon"},
    ]
    result = client.predict("churn", rows, request_id="req-1", labels={"segment": "b2c"})
    assert (result.request_id, result.model_name, result.model_version) == ("req-1", "churn", 1)
    frame = {name: [r[name] for r in rows] for name in rows[0]}
    want = bundles["classifier"].predict(
        {k: [np.nan if v is None and k == "age" else v for v in vs] for k, vs in frame.items()}
    )
    assert result.predictions == list(want.predictions)
    assert result.class_labels == ["no", "yes"]
    np.testing.assert_allclose(result.probabilities, want.probabilities)
    generated = client.predict("churn", rows[:1], omit_probabilities=True)
    assert generated.request_id and generated.request_id != "req-1" and generated.probabilities == []


def test_regression_by_version_and_latest(inference, bundles):
    _, client = inference
    columns = models.rows()
    by_version = client.predict("spend", columns, version=1)
    latest = client.predict("spend", columns, latest=True)
    np.testing.assert_allclose(by_version.predictions, bundles["regressor"].predict(columns).predictions)
    assert latest.predictions == by_version.predictions and latest.probabilities == []


def test_predict_stream_answers_each_request_and_survives_a_bad_one(inference):
    _, client = inference
    good = client.predict_request("churn", models.rows(), request_id="a")
    bad = client.predict_request("churn", {"age": [1.0]}, request_id="b")
    unknown = client.predict_request("nope", models.rows(), request_id="c")
    results = list(client.predict_stream([good, bad, unknown, good]))
    assert results[0].request_id == "a" and len(results[0].predictions) == 3
    assert isinstance(results[1], pb.PredictError)
    assert (results[1].request_id, results[1].code, results[1].field) == ("b", 3, "inputs.income")
    assert results[2].code == 5 and "nope" in results[2].message
    assert results[3].model_version == 1


def test_load_list_unload(inference, source, bundles):
    _, client = inference
    source.add_version("churn", bundles["flipped"])
    loaded = client.load(
        "churn", canary_version=2, canary_weight=0.5, batching=True, max_batch_size=8, max_delay_s=0.001
    )
    assert [(v["version"], v["weight"], v["state"]) for v in loaded["versions"]] == [
        (1, 0.5, "READY"),
        (2, 0.5, "READY"),
    ]
    assert loaded["batching"]["enabled"] and loaded["batching"]["max_batch_size"] == 8
    answered = {client.predict("churn", models.rows(1)).model_version for _ in range(40)}
    assert answered == {1, 2}
    client.load("spend", version=1)
    listing = client.list_loaded()
    assert {(m["model"], str(m["selector"])) for m in listing["models"]} == {
        ("churn", "production"),
        ("spend", "1"),
    }
    assert listing["memory_used_bytes"] > 0
    client.unload("spend", version=1)
    assert [m["model"] for m in client.list_loaded()["models"]] == ["churn"]
    with pytest.raises(LoopmlClientError) as error:
        client.unload("spend", version=1)
    assert error.value.code == "NOT_FOUND"
    with pytest.raises(LoopmlClientError) as error:
        client.load("churn", canary_version=2, canary_weight=2.0)
    assert error.value.code == "INVALID_ARGUMENT" and error.value.field_violations[0].field == "canary_weight"


def test_hot_reload_under_steady_load_fails_no_request(inference, source, bundles):
    server, client = inference
    client.load("churn")
    _wait_for(lambda: source.watcher_count == 1)
    v2 = source.add_version("churn", bundles["flipped"])
    failures, versions, stop = [], [], threading.Event()

    def steady_load():
        while not stop.is_set():
            try:
                versions.append(client.predict("churn", models.rows(2)).model_version)
            except Exception as exc:  # noqa: BLE001 - collected and asserted empty
                failures.append(exc)

    threads = [threading.Thread(target=steady_load) for _ in range(4)]
    for thread in threads:
        thread.start()
    _wait_for(lambda: len(versions) > 20)
    source.set_alias("churn", "production", v2)
    _wait_for(lambda: versions[-20:] == [v2] * 20)
    stop.set()
    for thread in threads:
        thread.join()
    assert failures == []
    first_new = versions.index(v2)
    assert set(versions[:first_new]) == {1} and set(versions) == {1, v2}

    bad = source.add_version("churn", bundles["broken"])
    source.set_alias("churn", "production", bad)
    _wait_for(lambda: any(v["state"] == "FAILED" for v in client.list_loaded()["models"][0]["versions"]))
    versions_now = client.list_loaded()["models"][0]["versions"]
    failed = next(v for v in versions_now if v["state"] == "FAILED")
    assert failed["version"] == bad and "smoke prediction" in failed["last_error"]
    assert client.predict("churn", models.rows(1)).model_version == v2  # the old one keeps serving
    metrics = _scrape(server)
    assert 'loopml_inference_reloads_total{model="churn",outcome="failed"}' in metrics


def test_prometheus_metrics_and_prediction_log_with_metrics_down(inference):
    server, client = inference
    for _ in range(3):
        client.predict("churn", models.rows())
    with pytest.raises(LoopmlClientError):
        client.predict("churn", {"age": [1.0]})
    _wait_for(lambda: _sample(_scrape(server), "loopml_inference_prediction_log_dropped_total") >= 3)
    metrics = _scrape(server)
    assert _sample(metrics, 'loopml_inference_requests_total{model="churn",version="1"}') >= 3
    assert (
        _sample(metrics, 'loopml_inference_request_errors_total{code="INVALID_ARGUMENT",model="churn"}') >= 1
    )
    assert 'loopml_inference_request_duration_seconds_bucket{le="0.5",model="churn",version="1"}' in metrics


def _scrape(server) -> str:
    address = server.settings.prometheus_address
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
        return response.read().decode()


def _sample(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


def test_integer_class_labels_come_back_as_integers(inference, source):
    _, client = inference
    source.add_version("xgb", models.xgb_classifier())
    columns = {f"f{i}": [1.0, -1.0] for i in range(4)}
    result = client.predict("xgb", columns, version=1)
    assert result.predictions == [1, 0] and result.class_labels == [0, 1]
    assert all(isinstance(p, int) for p in result.predictions)
