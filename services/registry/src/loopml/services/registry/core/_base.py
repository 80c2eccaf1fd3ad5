"""What every group of registry use cases shares: the database, the store, writes that notify."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loopml.runtime.db import Database
from loopml.runtime.objectstore import ObjectStore
from loopml.services.registry.storage import VersionRow


def version_name(model_name: str, version: int) -> str:
    """How errors name a version: `<model>/versions/<n>`."""
    return f"{model_name}/versions/{version}"


class RegistryBase:
    """Thread-safe; one per process. `on_change` is called after each committed change (the
    event feed uses it to wake this replica's watchers at once). `epoch` returns the last event
    sequence known (EventFeed.epoch), or -1 when unknown; every change appends an event, so an
    answer read at one epoch stays right as long as the epoch does (ResolveModel caches on it)."""

    def __init__(
        self,
        database: Database,
        store: ObjectStore,
        *,
        max_artifact_bytes: int,
        on_change: Callable[[], None] = lambda: None,
        epoch: Callable[[], int] = lambda: -1,
    ):
        self.database = database
        self.store = store
        self.max_artifact_bytes = max_artifact_bytes
        self._on_change = on_change
        self._epoch = epoch
        #: (model name, selector) -> (epoch, resolved version); see ResolveOperations.resolve
        self._resolved: dict = {}

    def _write(self, work: Callable[[Session], object]):
        """Run `work` in a transaction (retried if transient), then tell watchers."""
        result = self.database.transaction(work)
        self._on_change()
        return result

    def _read(self, statement) -> list:
        """Rows of one SELECT. On PostgreSQL in autocommit mode (one statement sees one snapshot;
        no BEGIN/COMMIT round trips); on SQLite in a normal session."""
        if self.database.backend == "postgresql":
            with self.database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                return conn.execute(statement).all()
        with self.database.session() as session:
            return session.execute(statement).all()

    def _delete_object_if_unreferenced(self, key: str) -> None:
        with self.database.session() as session:
            still_used = session.scalar(select(func.count()).where(VersionRow.artifact_key == key))
        if not still_used:
            self.store.delete(key)
