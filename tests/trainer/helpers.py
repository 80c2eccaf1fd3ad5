"""Shared helpers of the trainer tests: small real datasets and a core engine on real storage."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pandas as pd

from loopml.runtime.db import Database, migrate
from loopml.runtime.settings import ServiceSettings
from loopml.services.trainer.core.datasource import FrameDataSource
from loopml.services.trainer.core.execution import Engine, EngineConfig
from loopml.services.trainer.core.service import Trainer
from loopml.services.trainer.core.state import FINAL_STATES, SearchState

MIGRATIONS = Path(__file__).resolve().parents[2] / "services/trainer/src/loopml/services/trainer/migrations"


def breast_cancer(rows: int = 200) -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True).frame.sample(rows, random_state=0).reset_index(drop=True)
    data = data.iloc[:, list(range(8)) + [data.shape[1] - 1]]
    data["target"] = data["target"].map({0: "malignant", 1: "benign"})
    return data


def iris() -> pd.DataFrame:
    from sklearn.datasets import load_iris

    data = load_iris(as_frame=True).frame
    data["target"] = data["target"].map(dict(enumerate(["setosa", "versicolor", "virginica"])))
    return data


def diabetes(rows: int = 200) -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    return load_diabetes(as_frame=True).frame.sample(rows, random_state=0).reset_index(drop=True)


def mixed(rows: int = 160) -> pd.DataFrame:
    """Numeric, categorical (one rare, one high-cardinality), datetime and text columns, with gaps."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=rows)
    colour = rng.choice(["red", "green", "blue", "violet"], size=rows, p=[0.4, 0.3, 0.28, 0.02])
    code = [f"c{i}" for i in rng.integers(0, 80, size=rows)]
    when = pd.to_datetime("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, size=rows), unit="D")
    words = np.where(x > 0, "great product works well and fast", "poor quality broke after a few days")
    frame = pd.DataFrame({"x": x, "colour": colour, "code": code, "when": when, "review": words})
    frame.loc[::7, "x"] = np.nan
    frame["label"] = np.where(x + (colour == "red") * 0.5 + rng.normal(scale=0.3, size=rows) > 0, "yes", "no")
    return frame


def open_engine(settings: dict, data: FrameDataSource, worker: str = "", **config) -> Engine:
    s = ServiceSettings(**settings)
    database = Database(s.resolved_database_url())
    migrate(database, MIGRATIONS, "alembic_version_trainer")
    return Engine(
        SearchState(database, heartbeat_interval_s=1, grace_period_s=3),
        s.open_object_store(),
        data,
        None,
        EngineConfig(worker_id=worker or f"w-{uuid.uuid4().hex[:6]}", **config),
    )


def trainer(engine: Engine) -> Trainer:
    return Trainer(engine)


def wait_final(trainer: Trainer, search_id: str, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = trainer.get_search(search_id)
        if view.state in FINAL_STATES:
            return view
        time.sleep(0.3)
    raise AssertionError(f"search {search_id} still {trainer.get_search(search_id).state} after {timeout}s")
