"""Trainer worker processes on PostgreSQL: two workers share one search; a killed worker's search
is resumed from its recorded trials by another process."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time

import pytest

from loopml.client.datasets import DatasetClient
from loopml.client.trainer import TrainerClient, state_name
from loopml.services.dataset.server import make_server as make_dataset_server
from loopml.services.dataset.settings import DatasetSettings
from loopml.services.trainer.server import make_server as make_trainer_server
from loopml.services.trainer.settings import TrainerSettings
from tests.trainer.helpers import breast_cancer

ANY_PORT = "127.0.0.1:0"


@pytest.fixture
def cluster(fresh_pg_url, tmp_path, serve):
    """A dataset server and an API-only trainer on PostgreSQL; `start_worker(name)` adds a worker process."""
    common = {"database_url": fresh_pg_url, "data_dir": tmp_path / "data"}
    dataset = serve("dataset", make_dataset_server, DatasetSettings(**common, listen_address=ANY_PORT))
    serve(
        "trainer",
        make_trainer_server,
        TrainerSettings(
            **common, listen_address=ANY_PORT, run_searches=False, dataset_address=dataset.address
        ),
    )
    config = serve.served.client_config()
    frame = breast_cancer(160)
    upload = DatasetClient(config).upload(
        io.BytesIO(frame.to_csv(index=False).encode()),
        name="cancer",
        label_column="target",
        filename="cancer.csv",
    )
    processes = []

    def start_worker(name: str) -> subprocess.Popen:
        env = {
            **os.environ,
            "LOOPML_DATABASE_URL": fresh_pg_url,
            "LOOPML_DATA_DIR": str(tmp_path / "data"),
            "LOOPML_DATASET_ADDRESS": dataset.address,
            "LOOPML_WORKER_ID": name,
            "LOOPML_LEASE_S": "3",
            "LOOPML_HEARTBEAT_INTERVAL_S": "1",
            "LOOPML_HEARTBEAT_GRACE_S": "3",
            "LOOPML_LOG_LEVEL": "WARNING",
        }
        process = subprocess.Popen(
            [sys.executable, "-c", "from loopml.services.trainer.server import worker_main; worker_main()"],
            env=env,
            start_new_session=True,
        )
        processes.append(process)
        return process

    yield TrainerClient(config), upload.version.ref.dataset_id, start_worker
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_for(predicate, timeout: float = 120.0, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def trial_workers(trainer: TrainerClient, search_id: str) -> dict[str, str]:
    board = trainer.leaderboard(search_id, include_unscored=True)
    return {e.trial.trial_id: e.trial.worker_id for e in board.entries if e.trial.trial_id != "ensemble"}


def test_two_worker_processes_share_one_search(cluster):
    trainer, dataset_id, start_worker = cluster
    start_worker("w1")
    start_worker("w2")
    search = trainer.create_search(
        dataset_id,
        label="target",
        time_budget_s=300,
        max_trials=8,
        parallel_trials=2,
        seed=5,
        cv_folds=3,
        families=["linear", "knn", "random_forest", "hist_gradient_boosting"],
    )
    done = wait_for(
        lambda: (s := trainer.get_search(search.search_id)).state in (4, 5, 6) and s, what="the end"
    )
    assert state_name(done.state) == "SUCCEEDED", done.failure_reason
    workers = trial_workers(trainer, search.search_id)
    assert set(workers.values()) == {"w1", "w2"}  # both processes ran trials of the one search
    board = trainer.leaderboard(search.search_id, include_unscored=True)
    assert len(
        {e.trial.number for e in board.entries if e.rank >= 0 and e.trial.trial_id != "ensemble"}
    ) == len([e for e in board.entries if e.trial.trial_id != "ensemble"])  # no trial ran twice


def test_killed_worker_search_resumes_in_another_process(cluster):
    trainer, dataset_id, start_worker = cluster
    first = start_worker("w1")
    search = trainer.create_search(
        dataset_id,
        label="target",
        time_budget_s=300,
        max_trials=6,
        seed=7,
        cv_folds=3,
        families=["linear", "knn", "random_forest", "extra_trees"],
    )
    wait_for(
        lambda: trainer.get_search(search.search_id).progress.completed_trials >= 1, what="a first trial"
    )
    os.killpg(first.pid, signal.SIGKILL)  # the worker and its trial process die mid-search
    first.wait()
    before = trial_workers(trainer, search.search_id)
    # "" is a trial the kill caught between its creation and the write naming its worker
    assert "w1" in set(before.values()) <= {"w1", ""} and len(before) < 6

    start_worker("w2")
    done = wait_for(
        lambda: (s := trainer.get_search(search.search_id)).state in (4, 5, 6) and s, what="the end"
    )
    assert state_name(done.state) == "SUCCEEDED", done.failure_reason
    board = trainer.leaderboard(search.search_id, include_unscored=True)
    after = {e.trial.trial_id: e.trial for e in board.entries if e.trial.trial_id != "ensemble"}
    assert set(before) <= set(after)  # the recorded trials are kept
    assert {"w1", "w2"} <= {t.worker_id for t in after.values()} <= {"w1", "w2", ""}
    assert all(
        t.state != 1 for t in after.values()
    )  # nothing left RUNNING: the dead worker's trial was reaped
