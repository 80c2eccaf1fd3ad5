"""The `loopml metrics` commands and the Prometheus gauges, against a running service."""

from __future__ import annotations

import json
import socket
import time
import urllib.request

import pytest
from typer.testing import CliRunner

from loopml.client.cli import app
from loopml.client.cli.metrics import sparkline
from tests.metrics.helpers import feedback, record, start

NOW = time.time()


def test_sparkline_scales_between_min_and_max():
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert sparkline([5, 5]) == "▁▁" and sparkline([]) == ""


def test_cli_query_performance_alerts(backend, serve, monkeypatch):
    server, client = start(serve, backend)
    monkeypatch.setenv("LOOPML_METRICS_ADDRESS", server.address)
    client.record_metrics(
        [("rps", {"svc": "a"}, float(v), NOW - 300 + 60 * i) for i, v in enumerate([1, 5, 3])]
    )
    client.record_predictions([record("c1", "churn", 1, {"x": [1.0, 2.0]}, ["yes", "no"], at=NOW - 10)])
    client.record_feedback([feedback("c1", 0, "yes"), feedback("c1", 1, "yes")])
    runner = CliRunner()
    out = runner.invoke(app, ["metrics", "query", "rps", "--since", "600", "--step", "60", "--agg", "max"])
    assert out.exit_code == 0, out.output
    assert "svc=a" in out.output and "▁█▄" in out.output
    out = runner.invoke(app, ["--json", "metrics", "performance", "churn", "--window", "3600"])
    data = json.loads(out.output)
    version = data["versions"][0]
    assert version["feedback_count"] == "2" and version["coverage"] == 1.0
    assert version["online_metrics"][0]["metric"] == "METRIC_NAME_ACCURACY"
    assert version["online_metrics"][0]["value"] == 0.5
    out = runner.invoke(app, ["metrics", "performance", "churn"])
    assert "accuracy" in out.output and "0.5000" in out.output and "registry" in out.output
    out = runner.invoke(app, ["metrics", "alerts"])
    assert out.exit_code == 0 and "alert rules" in out.output
    out = runner.invoke(app, ["metrics", "performance", "ghost"])
    assert out.exit_code == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_quality_gauges_on_metrics_endpoint(local_backend, serve):
    from loopml.services.metrics.server import MetricsDeps
    from tests.metrics.test_drift import BuiltReference, _send_live

    port = _free_port()
    _, client = start(
        serve, local_backend, MetricsDeps(references=BuiltReference()), prometheus_address=f"127.0.0.1:{port}"
    )
    client.record_predictions([record("g1", "gauged", 3, {"x": [1.0, 2.0]}, ["a", "b"], at=NOW - 10)])
    client.record_feedback([feedback("g1", 0, "a"), feedback("g1", 1, "a")])
    client.performance("gauged", window_s=3600)
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'loopml_model_online_metric{metric="accuracy",model="gauged",version="3"} 0.5' in text
    assert 'loopml_model_feedback_coverage{model="gauged",version="3"} 1.0' in text
    _send_live(client, n=120)
    report = client.drift("m", version=4, window_s=600)
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    x = next(f for f in report.features if f.feature == "x")
    prefix = 'loopml_model_drift_psi{feature="x",model="m",version="4"}'
    line = next(row for row in text.splitlines() if row.startswith(prefix))
    assert float(line.split()[-1]) == pytest.approx(x.psi)
    assert 'loopml_model_drift_severity{model="m",version="4"} 3.0' in text


def test_cli_drift_table(local_backend, serve, monkeypatch):
    from loopml.services.metrics.server import MetricsDeps
    from tests.metrics.test_drift import BuiltReference, _send_live

    server, client = start(serve, local_backend, MetricsDeps(references=BuiltReference()))
    monkeypatch.setenv("LOOPML_METRICS_ADDRESS", server.address)
    _send_live(client, n=150)
    out = CliRunner().invoke(app, ["metrics", "drift", "m", "--version", "4", "--window", "600"])
    assert out.exit_code == 0, out.output
    lines = [line for line in out.output.splitlines() if "│" in line]
    assert any(" x " in line and "drift" in line for line in lines)
    assert "150 live rows" in out.output.replace("\n", " ")
    data = CliRunner().invoke(app, ["--json", "metrics", "drift", "m", "--version", "4", "--window", "600"])
    assert {f["feature"] for f in json.loads(data.output)["features"]} == {"x", "z", "color"}
