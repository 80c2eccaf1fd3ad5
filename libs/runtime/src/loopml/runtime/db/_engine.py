"""`create_engine`: the one place that turns a database URL into a configured SQLAlchemy engine.

Two backends are supported:

* SQLite (embedded mode): `sqlite:///relative/path.db` or `sqlite:////abs/path.db`. WAL journal,
  foreign keys on, and a busy timeout so concurrent writers queue instead of failing. Every
  transaction starts with `BEGIN IMMEDIATE` (SQLAlchemy emits it; the sqlite3 module's own
  transaction handling is switched off): a transaction takes the write lock up front and waits
  for it, so a read-then-write transaction can never fail on a lock upgrade. DDL is then
  transactional too, which `migrate` relies on.
* PostgreSQL (production): `postgresql://`, `postgresql+psycopg://` or `postgres://`, always
  through the psycopg 3 driver; pre-ping, a bounded pool, connect timeout and TCP keepalives.

Nothing here touches the database: connections (and the SQLite parent folder) are made on first use.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import QueuePool


class DatabaseURLError(ValueError):
    """The database URL is malformed or names a backend/driver loopml does not support."""


_SQLITE_DRIVERS = {"sqlite", "sqlite+pysqlite"}
_POSTGRES_DRIVERS = {"postgresql", "postgresql+psycopg", "postgres"}


def parse_url(url: str | URL) -> URL:
    """Validate `url` and return it with the driver loopml uses (pysqlite or psycopg 3)."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError as exc:
        raise DatabaseURLError(f"cannot parse database URL {url!r}: {exc}") from None
    name = parsed.drivername
    if name in _SQLITE_DRIVERS:
        db = parsed.database or ""
        if db in ("", ":memory:") or parsed.query.get("mode") == "memory":
            raise DatabaseURLError(
                "in-memory SQLite is not supported (each connection would see its own database); "
                "use a file: sqlite:///path/to/file.db"
            )
        return parsed.set(drivername="sqlite+pysqlite")
    if name in _POSTGRES_DRIVERS:
        return parsed.set(drivername="postgresql+psycopg")
    raise DatabaseURLError(
        f"unsupported database URL scheme {name!r} in "
        f"{parsed.render_as_string(hide_password=True)!r}: expected sqlite:///path or "
        "postgresql://user@host:port/dbname (driver psycopg 3)"
    )


def create_engine(
    url: str | URL,
    *,
    pool_size: int = 5,
    max_overflow: int = 10,
    connect_timeout_s: int = 5,
    busy_timeout_s: float = 30.0,
) -> Engine:
    """Build an engine for `url` (see the module docstring). Raises `DatabaseURLError`.

    PostgreSQL: `connect_timeout_s` bounds opening a connection (libpq's `connect_timeout`;
    a value in the URL query wins). Pool: `pool_size` kept open, `max_overflow` more under load,
    so five services at the defaults stay well under PostgreSQL's default 100 connections.
    SQLite: `busy_timeout_s` is how long a writer waits for the write lock before failing with
    "database is locked" (which `Database.transaction` then retries).
    """
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, pool_size, max_overflow, busy_timeout_s)
    return _postgres_engine(parsed, pool_size, max_overflow, connect_timeout_s)


def _postgres_engine(url: URL, pool_size: int, max_overflow: int, connect_timeout_s: int) -> Engine:
    defaults = {
        "connect_timeout": connect_timeout_s,
        # Notice a peer that vanished without closing the socket within about a minute.
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
    }
    connect_args = {k: v for k, v in defaults.items() if k not in url.query}  # the URL's win
    return sa.create_engine(
        url,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=10,
        pool_recycle=1800,
        connect_args=connect_args,
    )


def _sqlite_engine(url: URL, pool_size: int, max_overflow: int, busy_timeout_s: float) -> Engine:
    engine = sa.create_engine(
        url,
        poolclass=QueuePool,
        pool_size=pool_size,
        max_overflow=max_overflow,
        # `timeout` is sqlite3's busy timeout: a locked database is waited for, not an error.
        connect_args={"check_same_thread": False, "timeout": busy_timeout_s},
    )
    path = None if url.query.get("uri") else Path(url.database)

    @event.listens_for(engine, "do_connect")
    def _make_parent_folder(dialect, conn_rec, cargs, cparams):
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # reported like any other "cannot open" error of the driver
            raise sqlite3.OperationalError(f"cannot create folder for {path}: {exc}") from exc

    @event.listens_for(engine, "connect")
    def _configure(dbapi_conn, conn_rec):
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN (below), not sqlite3
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")  # durable enough with WAL, much faster
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def describe(engine: Engine) -> str:
    """The engine's URL without its password, for messages and logs."""
    return engine.url.render_as_string(hide_password=True)
