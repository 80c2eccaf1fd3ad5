"""`loopml predict` and `loopml serve status|load|unload` against a real inference server."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from loopml.client.cli import app
from tests.inference import models


def _runner(server):
    runner = CliRunner()
    env = {"LOOPML_INFERENCE_ADDRESS": server.address}
    return lambda *args: runner.invoke(app, list(args), env=env)


def test_predict_from_csv_and_json(inference, bundles, tmp_path):
    server, _ = inference
    run = _runner(server)
    csv_file = tmp_path / "rows.csv"
    csv_file.write_text("age,income,city\n30,80,paris\n,10,\n55,45.5,lyon\n")
    result = run("--json", "predict", "churn", str(csv_file), "--request-id", "cli-1")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    want = bundles["classifier"].predict(
        {"age": [30.0, float("nan"), 55.0], "income": [80.0, 10.0, 45.5], "city": ["paris", None, "lyon"]}
    )
    assert answer["predictions"] == list(want.predictions)
    assert (answer["request_id"], answer["model_version"]) == ("cli-1", 1)

    json_file = tmp_path / "rows.json"
    json_file.write_text(json.dumps([{"age": 30, "income": 80, "city": "paris"}]))
    human = run("predict", "churn", str(json_file), "--version", "1")
    assert human.exit_code == 0, human.output
    assert "churn v1" in human.stdout and "p(yes)" in human.stdout and want.predictions[0] in human.stdout

    bad = run("predict", "churn", "--rows", json.dumps([{"age": 1, "city": "x"}]))
    assert bad.exit_code == 1 and "inputs.income" in bad.output
    missing = run("predict", "ghost", "--rows", json.dumps(models.rows()))
    assert missing.exit_code == 1 and "NOT_FOUND" in missing.output


def test_serve_status_load_unload(inference, source, bundles):
    server, _ = inference
    run = _runner(server)
    source.add_version("churn", bundles["flipped"])
    loaded = run(
        "--json",
        "serve",
        "load",
        "churn",
        "--canary-version",
        "2",
        "--canary-weight",
        "0.25",
        "--batching",
        "--max-batch-size",
        "32",
        "--max-delay-ms",
        "1",
    )
    assert loaded.exit_code == 0, loaded.output
    assert [(v["version"], v["weight"]) for v in json.loads(loaded.stdout)["versions"]] == [
        (1, 0.75),
        (2, 0.25),
    ]
    status = json.loads(run("--json", "serve", "status").stdout)
    assert [m["model"] for m in status["models"]] == ["churn"] and status["models"][0]["batching"]["enabled"]
    human = run("serve", "status")
    assert "churn" in human.stdout and "0.25" in human.stdout
    assert run("serve", "unload", "churn").exit_code == 0
    assert json.loads(run("--json", "serve", "status").stdout)["models"] == []
    again = run("serve", "unload", "churn")
    assert again.exit_code == 1 and "NOT_FOUND" in again.output
