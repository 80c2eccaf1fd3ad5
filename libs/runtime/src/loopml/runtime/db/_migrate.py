"""`migrate`: bring one service's tables to its newest Alembic revision, safely at every start-up."""

from __future__ import annotations

import zlib
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Engine

from loopml.runtime.db._database import Database
from loopml.runtime.db._engine import describe
from loopml.runtime.db._retry import DEFAULT_RETRY, RetryPolicy, retry_transient

#: First key of the PostgreSQL advisory locks taken by `migrate` ("loop" in ASCII).
_LOCK_CLASS = 0x6C6F6F70


def migrate(
    target: Database | Engine,
    migrations_dir: str | Path,
    version_table: str,
    *,
    retry: RetryPolicy = DEFAULT_RETRY,
) -> str | None:
    """Run `alembic upgrade head` for the scripts in `migrations_dir`; return the revision now
    current (None if the folder has no revisions).

    Each service passes its own folder and version table (`alembic_version_<service>`), so all
    services can share one database. All pending revisions run in one transaction, which first
    takes a lock: a PostgreSQL advisory lock keyed on `version_table`, or SQLite's write lock.
    So two processes starting at once do not race (the second waits, then finds nothing to do),
    calling it again is a no-op, and a failed upgrade leaves nothing half-applied. A database
    that is briefly unreachable is retried per `retry`, then `Unavailable` is raised.

    The folder's env.py must call `loopml.runtime.db.alembic_env.run(...)`, which picks up the
    connection and version table passed from here.
    """
    engine = target.engine if isinstance(target, Database) else target
    folder = Path(migrations_dir).resolve()
    if not (folder / "env.py").is_file():
        raise FileNotFoundError(f"no Alembic env.py in migrations folder {folder}")

    def attempt() -> str | None:
        config = Config()
        config.set_main_option("script_location", str(folder).replace("%", "%%"))
        with engine.begin() as conn:  # on SQLite: BEGIN IMMEDIATE, i.e. the write lock
            if conn.dialect.name == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:cls, :key)"),
                    {"cls": _LOCK_CLASS, "key": _lock_key(version_table)},
                )
            config.attributes["connection"] = conn
            config.attributes["version_table"] = version_table
            command.upgrade(config, "head")
            context = MigrationContext.configure(conn, opts={"version_table": version_table})
            return context.get_current_revision()

    return retry_transient(attempt, retry, what=f"migrating {version_table} on {describe(engine)}")


def _lock_key(version_table: str) -> int:
    """A stable signed 32-bit key per version table (Python's hash() differs per process)."""
    key = zlib.crc32(version_table.encode())
    return key - 2**32 if key >= 2**31 else key
