"""The metadata database of a loopml service: SQLAlchemy engine and sessions, Alembic migrations.

Embedded mode uses a SQLite file, production PostgreSQL (psycopg 3); both behave the same
through this package (one contract test suite, tests/runtime/test_db_contract.py, runs on both).

A service uses it like this::

    class Base(DeclarativeBase):          # one Base per service, in its storage module, so
        pass                              # each service's metadata holds only its own tables

    db = Database(settings.resolved_database_url())
    migrate(db, Path(__file__).parent / "migrations", "alembic_version_dataset")

    with map_unique_violation("dataset", name):
        db.transaction(lambda s: s.add(DatasetRow(name=name)))   # retried if transient
    with db.session() as s:                                       # not retried
        row = s.get(DatasetRow, name)

    db.check()     # health probe: raises Unavailable
    db.dispose()   # shutdown

Table names are prefixed by the service (`dataset_...`) since the services may share one
PostgreSQL database; each keeps its own Alembic version table. The migrations folder holds
env.py (three lines, see `alembic_env`) and versions/.
"""

from loopml.runtime.db._classify import is_transient, is_unique_violation, map_unique_violation
from loopml.runtime.db._database import Database
from loopml.runtime.db._engine import DatabaseURLError, create_engine, parse_url
from loopml.runtime.db._migrate import migrate
from loopml.runtime.db._retry import DEFAULT_RETRY, RetryPolicy, retry_transient

__all__ = [
    "DEFAULT_RETRY",
    "Database",
    "DatabaseURLError",
    "RetryPolicy",
    "create_engine",
    "is_transient",
    "is_unique_violation",
    "map_unique_violation",
    "migrate",
    "parse_url",
    "retry_transient",
]
