"""RecordPredictions, RecordFeedback (join window, unknown/expired), GetModelPerformance."""

from __future__ import annotations

import time

import numpy as np
import pytest
import sqlalchemy as sa
from sklearn.metrics import accuracy_score, log_loss, mean_absolute_error, roc_auc_score

from loopml.client.errors import InvalidArgumentError, NotFoundError
from loopml.common.v1 import metric_pb2
from loopml.metrics.v1 import metrics_service_pb2 as pb
from tests.metrics.helpers import feedback, record, settings, start

NOW = time.time()


def test_duplicates_and_feedback_join(backend, serve):
    _, client = start(serve, backend, feedback_window_s=3600)
    recs = [
        record(f"r{i}", "churn", 1, {"x": [float(i), float(i + 1)]}, ["yes", "no"], at=NOW - 60)
        for i in range(5)
    ]
    old = record("old", "churn", 1, {"x": [1.0]}, ["yes"], at=NOW - 7200)
    first = client.record_predictions(recs + [old])
    assert (first.accepted_count, first.duplicate_count) == (6, 0)
    again = client.record_predictions(recs[:2] + [record("r9", "churn", 1, {"x": [1.0]}, ["no"], at=NOW)])
    assert (again.accepted_count, again.duplicate_count) == (1, 2)

    result = client.record_feedback(
        [
            feedback("r0", 0, "yes"),
            feedback("r0", 1, "yes"),
            feedback("r1", 0, "no"),
            feedback("nope", 0, "yes"),  # unknown request id
            feedback("r2", 5, "yes"),  # unknown row
            feedback("old", 0, "yes", at=NOW),  # 2 h after its prediction: outside the 1 h window
        ]
    )
    assert (result.accepted_count, result.unknown_count, result.expired_count) == (3, 2, 1)
    assert sorted(result.rejected_request_ids) == ["nope", "old", "r2"]

    # only the joined feedback is in the database
    engine = sa.create_engine(settings(backend).resolved_database_url())
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT request_id, row FROM metrics_feedback ORDER BY request_id, row")
        ).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("r0", 0), ("r0", 1), ("r1", 0)]


def test_bad_prediction_batch_stores_nothing(backend, serve):
    _, client = start(serve, backend)
    good = record("g1", "m", 1, {"x": [1.0]}, ["a"])
    no_id = record("", "m", 1, {"x": [1.0]}, ["a"])
    uneven = record("u1", "m", 1, {"x": [1.0, 2.0]}, ["a"])
    uneven.inputs.row_count = 1
    for bad, field in ((no_id, "records[1].request_id"), (uneven, "records[1].inputs.x")):
        with pytest.raises(InvalidArgumentError) as e:
            client.record_predictions([good, bad])
        assert e.value.field_violations[0].field == field
    with pytest.raises(NotFoundError):
        client.performance("m")
    with pytest.raises(InvalidArgumentError) as e:
        client.record_feedback([feedback("g1", -1, "a")])
    assert e.value.field_violations[0].field == "feedback[0].row"


def test_online_classification_metrics_match_sklearn(backend, serve):
    _, client = start(serve, backend)
    rng = np.random.default_rng(3)
    n = 60
    p_yes = rng.uniform(0.05, 0.95, n)
    truth = np.where(rng.uniform(size=n) < p_yes, "yes", "no")
    preds = np.where(p_yes >= 0.5, "yes", "no")
    recs = [
        record(
            f"c{i}",
            "churn",
            2,
            {"x": [float(i)]},
            [str(preds[i])],
            at=NOW - 100,
            probabilities=[[1 - p_yes[i], p_yes[i]]],
            classes=["no", "yes"],
        )
        for i in range(n)
    ]
    client.record_predictions(recs)
    with_feedback = range(40)  # 40 of 60 rows get feedback
    client.record_feedback([feedback(f"c{i}", 0, str(truth[i])) for i in with_feedback])
    perf = client.performance("churn", window_s=3600)
    assert perf.model_name == "churn" and [v.model_version for v in perf.versions] == [2]
    v = perf.versions[0]
    assert (v.prediction_count, v.feedback_count) == (60, 40)
    assert v.coverage == pytest.approx(40 / 60)
    idx = list(with_feedback)
    y = (truth[idx] == "yes").astype(int)
    scores = {metric_pb2.MetricName.Name(s.metric): s.value for s in v.online_metrics}
    assert scores["METRIC_NAME_ACCURACY"] == pytest.approx(accuracy_score(truth[idx], preds[idx]))
    assert scores["METRIC_NAME_ROC_AUC"] == pytest.approx(roc_auc_score(y, p_yes[idx]))
    assert scores["METRIC_NAME_LOG_LOSS"] == pytest.approx(log_loss(y, p_yes[idx]))
    assert all(s.evaluation_set == metric_pb2.EVALUATION_SET_ONLINE for s in v.online_metrics)
    # the registry is not reachable in this test: training metrics are omitted, and the answer says why
    assert not v.training_metrics and "registry" in v.training_metrics_note


def test_online_regression_metrics(backend, serve):
    _, client = start(serve, backend)
    preds = [10.0, 12.0, 7.5, 3.0]
    actual = [11.0, 12.0, 5.5, 4.0]
    client.record_predictions([record("q", "price", 1, {"x": [1.0, 2.0, 3.0, 4.0]}, preds, at=NOW - 10)])
    client.record_feedback([feedback("q", i, a) for i, a in enumerate(actual)])
    response = client.call(
        "GetModelPerformance",
        pb.GetModelPerformanceRequest(
            model_name="price", metrics=[metric_pb2.METRIC_NAME_MAE, metric_pb2.METRIC_NAME_RMSE]
        ),
    )
    scores = {s.metric: s.value for s in response.versions[0].online_metrics}
    assert scores[metric_pb2.METRIC_NAME_MAE] == pytest.approx(mean_absolute_error(actual, preds))
    assert scores[metric_pb2.METRIC_NAME_RMSE] == pytest.approx(
        np.sqrt(np.mean((np.array(actual) - preds) ** 2))
    )
    with pytest.raises(InvalidArgumentError) as e:  # accuracy does not fit a regression model
        client.call(
            "GetModelPerformance",
            pb.GetModelPerformanceRequest(model_name="price", metrics=[metric_pb2.METRIC_NAME_ACCURACY]),
        )
    assert e.value.field_violations[0].field == "metrics[0]"


def test_performance_bad_input(backend, serve):
    _, client = start(serve, backend)
    client.record_predictions([record("z", "known", 1, {"x": [1.0]}, ["a"])])
    with pytest.raises(NotFoundError) as e:
        client.performance("unknown-model")
    assert e.value.resource_name == "unknown-model"
    with pytest.raises(NotFoundError):
        client.performance("known", version=7)
    with pytest.raises(InvalidArgumentError) as e:
        client.performance("known", window_s=-10)
    assert e.value.field_violations[0].field == "end_time"


def test_class_labels_match_across_types():
    """Integer class labels with feedback sent as doubles or strings still name the same class."""
    from loopml.services.metrics.core import stats

    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    actual = [0.0, 1.0, "1", 1]
    assert stats.roc_auc(actual, probs, [0, 1]) == pytest.approx(roc_auc_score([0, 1, 1, 1], probs[:, 1]))
    assert stats.log_loss(actual, probs, [0, 1]) == pytest.approx(log_loss([0, 1, 1, 1], probs[:, 1]))
    assert stats.accuracy(actual, [0, 1, 0, 1]) == 0.75
    assert stats.accuracy([True, "false"], ["true", False]) == 1.0  # boolean classes


def test_builtin_serving_metrics_from_prediction_logs(backend, serve):
    _, client = start(serve, backend)
    t0 = NOW - (NOW % 60) - 600
    recs = [
        record(f"b{i}", "churn", 1 + i % 2, {"x": [1.0] * (i + 1)}, ["a"] * (i + 1), at=t0 + 30 * i)
        for i in range(4)
    ]
    recs[0].latency.FromMilliseconds(40)
    recs[2].latency.FromMilliseconds(10)
    client.record_predictions(recs)
    rows = client.query(
        "loopml_predicted_rows", start=t0, end=t0 + 120, step_s=60, aggregation="sum", group_by=["version"]
    )
    assert {s.labels["version"]: [x.value for x in s.samples] for s in rows} == {
        "1": [1.0, 3.0],
        "2": [2.0, 4.0],
    }
    latency = client.query(
        "loopml_prediction_latency_seconds",
        start=t0,
        end=t0 + 120,
        step_s=120,
        aggregation="max",
        matchers=["version=1"],
    )
    assert [x.value for x in latency[0].samples] == [pytest.approx(0.04)]
    with pytest.raises(InvalidArgumentError) as e:
        client.record_metrics([("loopml_predicted_rows", {}, 1.0, NOW)])
    assert e.value.field_violations[0].field == "points[0].name"
