"""`loopml models ...` against a real registry, in --json and human mode."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from loopml.client.cli import app


@pytest.fixture
def cli(registry):
    runner = CliRunner()
    env = {"LOOPML_REGISTRY_ADDRESS": registry.address}

    def run(*args: str, expect_ok: bool = True):
        result = runner.invoke(app, ["--json", "models", *args], env=env)
        assert (result.exit_code == 0) == expect_ok, result.output
        return json.loads(result.stdout) if expect_ok else result

    run.human = lambda *args: runner.invoke(app, ["models", *args], env=env)
    return run


def test_models_cli_end_to_end(cli, registry, tmp_path):
    client = registry.client
    client.upload_version(
        "churn",
        b"model one",
        create_model_if_missing=True,
        metrics={"accuracy": 0.8},
        params={"max_depth": 3},
        lineage={"dataset_id": "ds-1", "dataset_version": 1, "search_id": "s-1", "trial_id": "t-1"},
    )
    client.upload_version(
        "churn",
        b"model two",
        metrics={"accuracy": 0.9, "f1": 0.7},
        params={"max_depth": 5},
        lineage={"dataset_id": "ds-1", "dataset_version": 2, "search_id": "s-2"},
    )

    assert [m["name"] for m in cli("list")] == ["churn"]
    assert cli("show", "churn")["latest_version"] == "2"
    assert [v["version"] for v in cli("versions", "churn")] == ["2", "1"]
    assert [v["version"] for v in cli("versions", "--dataset", "ds-1", "--dataset-version", "1")] == ["1"]

    compared = cli("compare", "churn", "1", "2")
    assert compared["metrics"]["accuracy (cross_validation)"] == [0.8, 0.9]
    assert compared["metrics"]["f1 (cross_validation)"] == [None, 0.7]
    assert compared["params"]["max_depth"] == [3, 5]
    assert compared["lineage"]["dataset_version"] == [1, 2] and compared["lineage"]["search_id"] == [
        "s-1",
        "s-2",
    ]

    assert cli("alias", "churn", "production", "1")["version"] == "1"
    assert cli("alias", "churn", "production", "2", "--reason", "better")["previous_version"] == "1"
    assert cli("show", "churn", "--alias", "production")["version"] == "2"
    back = cli("rollback", "churn")
    assert (back["previous_version"], back["version"]) == ("2", "1")
    assert len(cli("alias", "churn", "--history")) == 3

    out = tmp_path / "model.bin"
    downloaded = cli("download", "churn", "-o", str(out))
    assert downloaded["version"] == 1 and out.read_bytes() == b"model one"

    refused = cli("delete", "churn", "--version", "1", expect_ok=False)
    assert refused.exit_code == 1 and "FAILED_PRECONDITION" in refused.output
    assert cli("delete", "churn", "--version", "2") == {"deleted": "churn/versions/2"}
    assert cli("delete", "churn", "--force") == {"deleted": "churn"}
    missing = cli("show", "churn", expect_ok=False)
    assert "NOT_FOUND" in missing.output


def test_models_cli_human_output(cli, registry, tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"artifact")
    uploaded = cli("upload", "human", str(path), "--create")
    assert uploaded["status"] == "MODEL_VERSION_STATUS_READY"
    result = cli.human("versions", "human")
    assert result.exit_code == 0 and "READY" in result.output
    result = cli.human("show", "human", "--latest")
    assert result.exit_code == 0 and "sha256" in result.output
