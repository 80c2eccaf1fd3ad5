"""Fixtures of the registry tests: a real registry server on loopback over each backend."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from loopml.client.registry import RegistryClient
from loopml.runtime.db import Database
from loopml.runtime.objectstore import ObjectStore
from loopml.services.registry.server import make_server
from loopml.services.registry.settings import RegistrySettings
from loopml.services.registry.storage import VersionRow


@dataclass
class RegistryUnderTest:
    client: RegistryClient
    settings: RegistrySettings
    address: str
    store: ObjectStore
    database: Database

    def model_objects(self) -> list[str]:
        """Keys of every artifact object the registry wrote (to spot orphans)."""
        return [info.key for info in self.store.list("models/")]

    def version_statuses(self, model_name: str) -> dict[int, str]:
        from loopml.services.registry.storage import ModelRow

        with self.database.session() as session:
            rows = session.execute(
                select(VersionRow.version, VersionRow.status)
                .join(ModelRow, ModelRow.id == VersionRow.model_id)
                .where(ModelRow.name == model_name)
            )
            return {version: status for version, status in rows}


@pytest.fixture
def registry(backend, serve):
    settings = RegistrySettings(**backend.settings, listen_address="127.0.0.1:0")
    server = serve("registry", make_server, settings)
    config = serve.served.client_config()
    client = RegistryClient(config, actor="tester")
    database = settings.open_database()
    yield RegistryUnderTest(client, settings, server.address, settings.open_object_store(), database)
    client.close()
    database.dispose()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
