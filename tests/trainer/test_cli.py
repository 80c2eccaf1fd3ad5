"""`loopml search ...` against real dataset and trainer servers."""

from __future__ import annotations

import io
import json

from typer.testing import CliRunner

from loopml.client.cli import app
from loopml.client.datasets import DatasetClient
from loopml.client.errors import FailedPreconditionError, NotFoundError
from loopml.services.dataset.server import make_server as make_dataset_server
from loopml.services.dataset.settings import DatasetSettings
from loopml.services.trainer.server import make_server as make_trainer_server
from loopml.services.trainer.settings import TrainerSettings
from tests.trainer.helpers import iris


def test_search_commands(local_backend, serve, monkeypatch):
    dataset = serve(
        "dataset",
        make_dataset_server,
        DatasetSettings(**local_backend.settings, listen_address="127.0.0.1:0"),
    )
    trainer = serve(
        "trainer",
        make_trainer_server,
        TrainerSettings(
            **local_backend.settings, listen_address="127.0.0.1:0", dataset_address=dataset.address
        ),
    )
    monkeypatch.setenv("LOOPML_DATASET_ADDRESS", dataset.address)
    monkeypatch.setenv("LOOPML_TRAINER_ADDRESS", trainer.address)
    upload = DatasetClient(serve.served.client_config()).upload(
        io.BytesIO(iris().to_csv(index=False).encode()),
        name="iris",
        label_column="target",
        filename="iris.csv",
    )
    dataset_id = upload.version.ref.dataset_id
    cli = CliRunner()

    started = cli.invoke(
        app,
        [
            "search",
            "start",
            dataset_id,
            "--label",
            "target",
            "--max-trials",
            "2",
            "--budget",
            "0",
            "-f",
            "linear",
            "-f",
            "knn",
            "--folds",
            "3",
            "--watch",
        ],
    )
    assert started.exit_code == 0, started.output
    assert "SUCCEEDED" in started.output and "leaderboard" in started.output

    listed = cli.invoke(app, ["--json", "search", "list"])
    assert listed.exit_code == 0, listed.output
    searches = json.loads(listed.output)
    assert len(searches) == 1 and searches[0]["state"] == "SEARCH_STATE_SUCCEEDED"
    search_id = searches[0]["search_id"]

    board = json.loads(cli.invoke(app, ["--json", "search", "leaderboard", search_id]).output)
    assert board["metric"] == "METRIC_NAME_LOG_LOSS" and board["entries"][0]["rank"] == 1
    shown = cli.invoke(app, ["search", "show", search_id])
    assert shown.exit_code == 0 and search_id in shown.output and "artifact" in shown.output

    # `loopml` (main) prints these errors; the typer app itself raises them
    refused = cli.invoke(app, ["search", "cancel", search_id])
    assert refused.exit_code == 1 and isinstance(refused.exception, FailedPreconditionError)
    missing = cli.invoke(app, ["search", "show", "nope"])
    assert missing.exit_code == 1 and isinstance(missing.exception, NotFoundError)
