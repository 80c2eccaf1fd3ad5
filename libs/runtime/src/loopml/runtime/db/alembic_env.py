"""The body of every service's Alembic env.py. A service's `migrations/env.py` is::

    from loopml.runtime.db import alembic_env
    from loopml.services.dataset.storage import Base

    alembic_env.run(Base.metadata, version_table="alembic_version_dataset")

Called from `migrate()`, it runs on the connection (and inside the locked transaction) that
`migrate` passes in. Called from the `alembic` command line (e.g. `alembic revision
--autogenerate`), it connects to `sqlalchemy.url` of alembic.ini or else `$LOOPML_DATABASE_URL`.

Only tables of `target_metadata` are compared by autogenerate: the services share one
database, and another service's tables must not show up as "removed".
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import MetaData

from loopml.runtime.db._engine import create_engine, parse_url


def run(target_metadata: MetaData | None, version_table: str) -> None:
    """Configure the Alembic context for one service and run its migrations."""
    config = context.config
    passed = config.attributes.get("version_table")
    if passed is not None and passed != version_table:
        raise ValueError(
            f"migrate() was given version table {passed!r} but env.py declares {version_table!r}"
        )
    options = dict(
        target_metadata=target_metadata,
        version_table=version_table,
        include_name=_only_tables_of(target_metadata),
        render_as_batch=True,  # ALTER on SQLite needs batch mode; plain ALTERs elsewhere
        compare_type=True,
    )
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            context.run_migrations()
        return

    url = config.get_main_option("sqlalchemy.url") or os.environ.get("LOOPML_DATABASE_URL", "")
    if not url:
        raise RuntimeError("set sqlalchemy.url in alembic.ini or LOOPML_DATABASE_URL")
    if context.is_offline_mode():  # `alembic upgrade --sql`: print the SQL
        context.configure(url=parse_url(url), literal_binds=True, **options)
        with context.begin_transaction():
            context.run_migrations()
        return

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            context.configure(connection=conn, **options)
            context.run_migrations()
    finally:
        engine.dispose()


def _only_tables_of(metadata: MetaData | None):
    def include_name(name, type_, parent_names) -> bool:
        if type_ != "table" or metadata is None:
            return True
        return name in metadata.tables

    return include_name
