"""`loopml datasets ...` against a real dataset service."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from loopml.client.cli import app
from loopml.client.errors import InvalidArgumentError
from tests.dataset import data
from tests.dataset.test_explore import leaky_frame


@pytest.fixture
def cli(service):
    runner = CliRunner()
    env = {"LOOPML_DATASET_ADDRESS": service.server.address, "COLUMNS": "200"}

    def run(*args: str, ok: bool = True):
        result = runner.invoke(app, list(args), env=env, catch_exceptions=not ok)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return run


def test_cli_round_trip(cli, tmp_path):
    path = tmp_path / "leaky.csv"
    path.write_bytes(data.csv_bytes(leaky_frame()))
    out = cli("datasets", "upload", str(path), "--label", "churn").output
    assert (
        "dataset leaky" in out and "version 1: created" in out and "205 rows" in out and "task: binary" in out
    )
    uploaded = json.loads(cli("--json", "datasets", "upload", str(path), "--name", "leaky").output)
    assert uploaded.get("created", False) is False and uploaded["version"]["ref"]["version"] == "1"
    assert "leaky" in cli("datasets", "list").output
    listed = json.loads(cli("--json", "datasets", "list").output)
    assert [d["name"] for d in listed] == ["leaky"]
    show = cli("datasets", "show", "leaky").output
    assert "refund_flag" in show and "categorical" in show and "label churn: binary" in show
    profile = cli("datasets", "profile", "leaky").output
    assert "label_leak: column 'refund_flag' predicts 'churn'" in profile and "charges" in profile
    preview = json.loads(
        cli("--json", "datasets", "preview", "leaky", "--rows", "3", "--columns", "row_id,region").output
    )
    assert preview["total_rows"] == 205 and [r["row_id"] for r in preview["rows"]] == ["0", "1", "2"]
    assert "region" in cli("datasets", "preview", "leaky", "--sample", "--seed", "4").output
    roles = cli("datasets", "roles", "leaky", "--label", "tenure", "--role", "day=time").output
    assert "regression" in roles
    split = json.loads(
        cli(
            "--json", "datasets", "split", "leaky", "--train", "0.7", "--test", "0.3", "--strategy", "time"
        ).output
    )
    assert int(split["split"]["train_rows"]) == 144
    target = tmp_path / "test.parquet"
    cli("datasets", "download", "leaky", str(target), "--split", split["split"]["split_id"], "--part", "test")
    assert pq.read_table(target).num_rows == int(split["split"]["test_rows"])
    original = tmp_path / "original.csv"
    cli("datasets", "download", "leaky", str(original))
    assert original.read_bytes() == path.read_bytes()
    bad = cli("datasets", "split", "leaky", "--train", "0.7", "--test", "0.4", ok=False)
    assert bad.exit_code != 0 and isinstance(bad.exception, InvalidArgumentError)  # `loopml` prints it
    assert "add up to 1.1" in bad.exception.message
    assert "deleted versions [1]" in cli("datasets", "delete", "leaky").output
    assert json.loads(cli("--json", "datasets", "list").output) == []
