"""Shared helpers of the metrics tests: start the service, build prediction records."""

from __future__ import annotations

import time

from loopml.client.metrics import MetricsClient, timestamp
from loopml.common.v1 import value_pb2
from loopml.metrics.v1 import metrics_pb2
from loopml.services.metrics.server import MetricsDeps, make_server
from loopml.services.metrics.settings import MetricsSettings

#: Nothing listens here: the registry, dataset and trainer are "not reachable" in these tests.
NOWHERE = "127.0.0.1:9"


def settings(backend, **extra) -> MetricsSettings:
    base = dict(
        backend.settings,
        listen_address="127.0.0.1:0",
        registry_address=NOWHERE,
        dataset_address=NOWHERE,
        trainer_address=NOWHERE,
        call_timeout_s=2.0,
        maintenance_interval_s=0,
        alert_evaluation_interval_s=0,
        gauge_refresh_interval_s=0,
    )
    base.update(extra)
    return MetricsSettings(**base)


def start(serve, backend, deps: MetricsDeps | None = None, **extra):
    server = serve("metrics", lambda s: make_server(s, deps), settings(backend, **extra))
    return server, MetricsClient(serve.served.client_config())


def column(name: str, cells: list) -> value_pb2.Column:
    if all(isinstance(c, str) for c in cells):
        return value_pb2.Column(name=name, string_values=value_pb2.StringArray(values=cells))
    if all(isinstance(c, bool) for c in cells):
        return value_pb2.Column(name=name, bool_values=value_pb2.BoolArray(values=cells))
    return value_pb2.Column(name=name, double_values=value_pb2.DoubleArray(values=[float(c) for c in cells]))


def record(
    request_id: str,
    model: str,
    version: int,
    inputs: dict[str, list],
    predictions: list,
    at: float | None = None,
    probabilities: list[list[float]] | None = None,
    classes: list | None = None,
    labels: dict | None = None,
) -> metrics_pb2.PredictionRecord:
    rows = len(predictions)
    r = metrics_pb2.PredictionRecord(
        request_id=request_id,
        model_name=model,
        model_version=version,
        inputs=value_pb2.Table(columns=[column(k, v) for k, v in inputs.items()], row_count=rows),
        predictions=column("prediction", predictions),
        labels=labels or {},
    )
    r.time.CopyFrom(timestamp(time.time() if at is None else at))
    if probabilities is not None:
        r.probabilities.class_labels.extend([value_pb2.Value(string_value=str(c)) for c in classes])
        r.probabilities.values.extend([p for row in probabilities for p in row])
    return r


def feedback(request_id: str, row: int, actual, business: dict | None = None, at: float | None = None):
    v = (
        value_pb2.Value(string_value=actual)
        if isinstance(actual, str)
        else value_pb2.Value(double_value=actual)
    )
    f = metrics_pb2.Feedback(request_id=request_id, row=row, actual=v, business_values=business or {})
    if at is not None:
        f.time.CopyFrom(timestamp(at))
    return f
