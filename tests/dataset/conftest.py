"""Fixtures of the dataset service tests: a real server on loopback over each storage backend."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from loopml.client.datasets import DatasetClient
from loopml.services.dataset.server import Deps, make_server
from loopml.services.dataset.settings import DatasetSettings


@dataclass
class RecordedLineage:
    """A LineageChecker holding lineage records as the registry would report them."""

    uses: dict[tuple[str, int], list[str]] = field(default_factory=dict)

    def models_using(self, dataset_id: str, version: int) -> list[str]:
        return [
            m for (d, v), models in self.uses.items() if d == dataset_id and version in (0, v) for m in models
        ]


@dataclass
class DatasetService:
    server: object
    client: DatasetClient
    lineage: RecordedLineage
    spool_dir: object

    @property
    def store(self):
        return self.server.core.store

    def leftovers(self) -> tuple[int, int, list[str], list]:
        """(datasets, versions) in the database, dataset objects in the store, temp files."""
        datasets, versions = self.server.core.repo.counts()
        objects = [o.key for o in self.store.list("datasets/")]
        return datasets, versions, objects, list(self.spool_dir.iterdir())


def start(serve, backend, tmp_path, lineage=None, **overrides) -> DatasetService:
    spool = tmp_path / "spool"
    spool.mkdir(exist_ok=True)
    settings = DatasetSettings(
        **{**backend.settings, "listen_address": "127.0.0.1:0", "spool_dir": str(spool), **overrides}
    )
    recorded = RecordedLineage()
    server = serve("dataset", lambda s: make_server(s, Deps(lineage=lineage or recorded)), settings)
    client = DatasetClient(serve.served.client_config())
    return DatasetService(server, client, recorded, spool)


@pytest.fixture
def service(serve, backend, tmp_path) -> DatasetService:
    svc = start(serve, backend, tmp_path)
    yield svc
    svc.client.close()
