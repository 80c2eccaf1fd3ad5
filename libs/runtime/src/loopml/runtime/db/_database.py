"""`Database`: one service's handle on its metadata database (engine, sessions, health, retries)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from loopml.runtime.db._classify import is_transient
from loopml.runtime.db._engine import create_engine, describe
from loopml.runtime.db._retry import DEFAULT_RETRY, RetryPolicy, describe_error, retry_transient
from loopml.runtime.errors import Unavailable

T = TypeVar("T")


class Database:
    """Engine plus session factory for one database URL. Thread-safe; build one per process.

    Sessions do not expire objects on commit, so rows read in a session stay usable after it.
    Do not nest sessions: on SQLite the inner one would wait for the write lock the outer holds.
    Constructing it does no I/O; the first session, `check()` or `migrate()` connects.
    """

    def __init__(self, url_or_engine: str | URL | Engine, **engine_options):
        if isinstance(url_or_engine, Engine):
            self.engine = url_or_engine
        else:
            self.engine = create_engine(url_or_engine, **engine_options)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def backend(self) -> str:
        """`"sqlite"` or `"postgresql"`."""
        return self.engine.dialect.name

    @property
    def url(self) -> str:
        """The URL without its password."""
        return describe(self.engine)

    def __repr__(self) -> str:
        return f"Database({self.url!r})"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed when the block ends, rolled back when it
        raises. Transient database failures surface as `Unavailable` (the client may retry);
        use `transaction()` to retry them here instead."""
        try:
            with self._transaction() as session:
                yield session
        except DBAPIError as exc:
            if is_transient(exc):
                raise Unavailable(f"database {self.url} is unavailable: {describe_error(exc)}") from exc
            raise

    def transaction(self, work: Callable[[Session], T], *, retry: RetryPolicy = DEFAULT_RETRY) -> T:
        """Run `work(session)` in a transaction and commit; on a transient failure roll back and
        run it again in a fresh session (see `RetryPolicy`), then give up with `Unavailable`.

        `work` may run more than once, so it should only touch the database (no other side
        effects). If a connection drops during COMMIT the first try may in fact have committed;
        a unique constraint (with `map_unique_violation`) keeps such a rerun from duplicating rows.
        """

        def attempt() -> T:
            with self._transaction() as session:
                return work(session)

        return retry_transient(attempt, retry, what=f"database {self.url}")

    def check(self, timeout_s: float = 2.0) -> None:
        """Health probe: `SELECT 1`; raises `Unavailable` when the database does not answer.

        Opening a PostgreSQL connection is bounded by the engine's connect timeout (5 s by
        default; a refused connection fails at once) and the query by `timeout_s`. On SQLite
        the probe does not take the write lock, so it does not wait behind writers.
        """
        try:
            raw = self.engine.raw_connection()  # pool checkout: pre-ping, reconnect
            try:
                cursor = raw.cursor()
                if self.backend == "postgresql":  # SET LOCAL ends with this probe's transaction
                    cursor.execute(f"SET LOCAL statement_timeout = {max(1, int(timeout_s * 1000))}")
                cursor.execute("SELECT 1")
                cursor.fetchone()
                cursor.close()
            finally:
                raw.close()  # back to the pool, which rolls back
        except Exception as exc:  # any failure to answer is "unavailable" for a health check
            raise Unavailable(f"database {self.url} is not answering: {describe_error(exc)}") from exc

    def dispose(self) -> None:
        """Close every pooled connection (at shutdown, or in a child process after fork)."""
        self.engine.dispose()

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session
