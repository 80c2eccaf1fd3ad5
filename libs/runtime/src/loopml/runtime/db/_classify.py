"""Reading database errors: which are transient (retry), which are unique violations (AlreadyExists).

Both backends are recognised by the driver's own error codes (SQLite result codes, PostgreSQL
SQLSTATEs), not by message text where a code exists.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError, IntegrityError

from loopml.runtime.errors import AlreadyExists

_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6
_SQLITE_CONSTRAINT_PRIMARYKEY, _SQLITE_CONSTRAINT_UNIQUE = 1555, 2067

#: PostgreSQL SQLSTATEs worth retrying: the transaction lost a race or the server went away.
_PG_TRANSIENT = {
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "55P03",  # lock_not_available
    "57P01",  # admin_shutdown (server restarting)
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now (server starting up)
    "53300",  # too_many_connections
}
_PG_UNIQUE_VIOLATION = "23505"


def is_transient(exc: BaseException) -> bool:
    """True when `exc` is a database failure that a fresh attempt of the transaction may not hit.

    That is: a dropped or refused connection, a PostgreSQL serialization failure or deadlock, a
    server restart, or SQLite's "database is locked". Anything else (constraint violations,
    SQL errors, missing tables) is a bug or a domain outcome, and is not retried.
    """
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:  # SQLAlchemy saw the connection drop
        return True
    orig = exc.orig
    if isinstance(orig, sqlite3.Error):
        code = getattr(orig, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
        return "locked" in str(orig)
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate is not None:
        return sqlstate in _PG_TRANSIENT or sqlstate.startswith("08")  # 08: connection exception
    # psycopg reports a refused/failed connection as OperationalError without a SQLSTATE.
    return _is_psycopg_operational(orig)


def _is_psycopg_operational(orig: object) -> bool:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency of the runtime
        return False
    return isinstance(orig, psycopg.OperationalError)


def is_unique_violation(exc: BaseException) -> bool:
    """True when `exc` is an IntegrityError from a UNIQUE or PRIMARY KEY constraint."""
    if not isinstance(exc, IntegrityError):
        return False
    orig = exc.orig
    if isinstance(orig, sqlite3.Error):
        code = getattr(orig, "sqlite_errorcode", None)
        if code is not None:
            return code in (_SQLITE_CONSTRAINT_UNIQUE, _SQLITE_CONSTRAINT_PRIMARYKEY)
        return "UNIQUE constraint failed" in str(orig)
    return getattr(orig, "sqlstate", None) == _PG_UNIQUE_VIOLATION


@contextmanager
def map_unique_violation(resource_type: str, resource_name: str) -> Iterator[None]:
    """Turn a unique-constraint violation raised inside the block into `AlreadyExists`.

    Put it *around* the session or transaction, so the violation is caught also when it only
    surfaces at commit::

        with map_unique_violation("dataset", name):
            db.transaction(lambda s: s.add(DatasetRow(name=name)))

    Other integrity errors (foreign key, NOT NULL, CHECK) pass through unchanged.
    """
    try:
        yield
    except IntegrityError as exc:
        if is_unique_violation(exc):
            raise AlreadyExists(resource_type, resource_name) from exc
        raise
