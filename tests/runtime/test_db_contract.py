"""Contract of loopml.runtime.db: one suite, run on SQLite (a temporary file) and PostgreSQL.

What a service may rely on, whichever backend it runs on: migrations apply once and are safe to
run concurrently, sessions are all-or-nothing, unique violations read as AlreadyExists, concurrent
writers all get through, health checks tell the truth, and transient failures are retried.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import loopml.runtime
from loopml.runtime.db import (
    Database,
    DatabaseURLError,
    RetryPolicy,
    create_engine,
    is_transient,
    map_unique_violation,
    migrate,
)
from loopml.runtime.errors import AlreadyExists, Unavailable

EXAMPLE_MIGRATIONS = Path(__file__).parent / "example_migrations"
VERSION_TABLE = "alembic_version_example"
HEAD = "0002"
FAST_RETRY = RetryPolicy(attempts=3, backoff_s=0.01, max_backoff_s=0.02)


class ExampleBase(DeclarativeBase):
    """Each service declares its own Base like this; the migrations create its tables."""


class Widget(ExampleBase):
    __tablename__ = "example_widget"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    color: Mapped[str | None] = mapped_column(sa.String(20))


class WidgetTag(ExampleBase):
    __tablename__ = "example_widget_tag"
    widget_id: Mapped[int] = mapped_column(sa.ForeignKey("example_widget.id"), primary_key=True)
    tag: Mapped[str] = mapped_column(sa.String(50), primary_key=True)


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """An empty database of each backend. The SQLite file's folder does not exist yet."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/data/meta.db"
    return request.getfixturevalue("fresh_pg_url")


@pytest.fixture
def db(db_url):
    database = Database(db_url)
    yield database
    database.dispose()


@pytest.fixture
def migrated(db) -> Database:
    migrate(db, EXAMPLE_MIGRATIONS, VERSION_TABLE)
    return db


def count(db: Database, model) -> int:
    with db.session() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(model))


def injected_transient(db: Database) -> OperationalError:
    """What the driver raises when the transaction lost a lock race on this backend."""
    if db.backend == "sqlite":
        orig = sqlite3.OperationalError("database is locked")
    else:
        orig = psycopg.errors.SerializationFailure("could not serialize access")
    return OperationalError("INSERT INTO example_widget ...", {}, orig)


def injected_disconnect() -> OperationalError:
    """What SQLAlchemy raises when the connection dropped under a statement."""
    return OperationalError(
        "SELECT 1", {}, Exception("server closed the connection"), connection_invalidated=True
    )


# -- migrations -----------------------------------------------------------------------------------
def test_migrate_applies_all_revisions_and_is_idempotent(db):
    assert migrate(db, EXAMPLE_MIGRATIONS, VERSION_TABLE) == HEAD
    assert migrate(db, EXAMPLE_MIGRATIONS, VERSION_TABLE) == HEAD  # second start-up: no-op

    tables = set(sa.inspect(db.engine).get_table_names())
    assert {"example_widget", "example_widget_tag", VERSION_TABLE} <= tables
    assert "alembic_version" not in tables  # each service keeps its own version table
    assert "color" in {c["name"] for c in sa.inspect(db.engine).get_columns("example_widget")}
    with db.engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all() == [HEAD]


def test_migrate_accepts_an_engine(db):
    assert migrate(db.engine, EXAMPLE_MIGRATIONS, VERSION_TABLE) == HEAD


def test_migrate_rejects_a_version_table_env_py_does_not_declare(db):
    with pytest.raises(ValueError, match="version table"):
        migrate(db, EXAMPLE_MIGRATIONS, "alembic_version_other")
    assert "example_widget" not in sa.inspect(db.engine).get_table_names()


def test_migrate_from_several_processes_at_once(db_url, tmp_path):
    """Services restarting together all run migrate at start-up; none may fail or double-apply."""
    processes = 4
    src = Path(loopml.runtime.__file__).parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    go = tmp_path / "go"
    worker = (
        "import sys, time, pathlib\n"
        "from loopml.runtime.db import Database, migrate\n"
        "url, folder, table, ready, go = sys.argv[1:]\n"
        "db = Database(url)\n"
        "pathlib.Path(ready).touch()\n"
        "while not pathlib.Path(go).exists(): time.sleep(0.005)\n"
        "print(migrate(db, folder, table))\n"
    )
    children = []
    for i in range(processes):
        ready = tmp_path / f"ready{i}"
        args = [db_url, str(EXAMPLE_MIGRATIONS), VERSION_TABLE, str(ready), str(go)]
        children.append(
            subprocess.Popen(
                [sys.executable, "-c", worker, *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready{i}").exists() for i in range(processes)):
        assert time.monotonic() < deadline, "workers did not start"
        assert all(c.poll() is None for c in children), [c.communicate() for c in children]
        time.sleep(0.01)
    go.touch()

    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        assert out.strip() == HEAD
    database = Database(db_url)
    try:
        with database.engine.connect() as conn:
            assert conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all() == [HEAD]
    finally:
        database.dispose()


# -- sessions -------------------------------------------------------------------------------------
def test_session_commits_when_the_block_succeeds(migrated):
    with migrated.session() as s:
        s.add(Widget(name="a", color="red"))
    with migrated.session() as s:
        widget = s.scalars(sa.select(Widget)).one()
    assert (widget.name, widget.color) == ("a", "red")  # still readable after the session


def test_session_rolls_back_everything_when_the_block_raises(migrated):
    with pytest.raises(RuntimeError, match="midway"):
        with migrated.session() as s:
            widget = Widget(name="half")
            s.add(widget)
            s.flush()  # the row is written inside the transaction...
            s.add(WidgetTag(widget_id=widget.id, tag="t"))
            s.flush()
            raise RuntimeError("midway")
    assert count(migrated, Widget) == 0  # ...and gone with the rollback
    assert count(migrated, WidgetTag) == 0


def test_unique_violation_is_already_exists(migrated):
    migrated.transaction(lambda s: s.add(Widget(name="dup")))

    with pytest.raises(AlreadyExists) as caught:
        with map_unique_violation("widget", "dup"), migrated.session() as s:
            s.add(Widget(name="dup"))  # surfaces only at commit
    assert (caught.value.resource_type, caught.value.resource_name) == ("widget", "dup")

    with pytest.raises(AlreadyExists):
        with map_unique_violation("widget", "dup"):
            migrated.transaction(lambda s: s.add(Widget(name="dup")))
    assert count(migrated, Widget) == 1


def test_other_integrity_errors_are_not_already_exists(migrated):
    """A foreign key violation stays an IntegrityError (and proves foreign keys are enforced)."""
    with pytest.raises(IntegrityError):
        with map_unique_violation("widget_tag", "x"), migrated.session() as s:
            s.add(WidgetTag(widget_id=999, tag="x"))


def test_concurrent_writers_all_succeed(migrated):
    """8 threads doing read-then-write transactions: on SQLite they queue on the write lock."""
    threads, per_thread = 8, 25
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                with migrated.session() as s:
                    s.scalar(sa.select(sa.func.count()).select_from(Widget))
                    s.add(Widget(name=f"w{n}-{i}"))
        except BaseException as exc:  # reported below, with the thread's error
            errors.append(exc)

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert not errors, errors
    assert count(migrated, Widget) == threads * per_thread


# -- health ---------------------------------------------------------------------------------------
def test_check_passes_on_a_reachable_database(db):
    db.check()


def test_check_is_unavailable_when_postgres_does_not_listen():
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    db = Database(f"postgresql://postgres@127.0.0.1:{port}/nothing")
    started = time.monotonic()
    with pytest.raises(Unavailable, match="not answering"):
        db.check()
    assert time.monotonic() - started < 5
    db.dispose()


@pytest.mark.parametrize("layout", ["path_is_a_folder", "parent_is_a_file"])
def test_check_is_unavailable_for_an_unusable_sqlite_path(tmp_path, layout):
    if layout == "path_is_a_folder":
        path = tmp_path / "db"
        path.mkdir()
    else:
        (tmp_path / "file").write_text("not a folder")
        path = tmp_path / "file" / "meta.db"
    db = Database(f"sqlite:///{path}")
    with pytest.raises(Unavailable):
        db.check()
    db.dispose()


# -- retries --------------------------------------------------------------------------------------
@pytest.mark.parametrize("failure", ["lost_lock_race", "connection_dropped"])
def test_transaction_survives_one_transient_failure(migrated, failure):
    calls = []

    def work(s):
        calls.append(1)
        s.add(Widget(name="retried"))
        s.flush()
        if len(calls) == 1:  # the first try's row must be rolled back, not kept
            raise injected_transient(migrated) if failure == "lost_lock_race" else injected_disconnect()
        return "done"

    assert migrated.transaction(work, retry=FAST_RETRY) == "done"
    assert len(calls) == 2
    assert count(migrated, Widget) == 1


def test_transaction_is_unavailable_after_the_tries_are_used_up(migrated):
    calls = []

    def work(s):
        calls.append(1)
        raise injected_transient(migrated)

    with pytest.raises(Unavailable, match="after 3 tries") as caught:
        migrated.transaction(work, retry=FAST_RETRY)
    assert len(calls) == FAST_RETRY.attempts
    assert is_transient(caught.value.__cause__)


def test_transaction_does_not_retry_other_errors(migrated):
    calls = []

    def work(s):
        calls.append(1)
        raise ValueError("a bug, not a transient failure")

    with pytest.raises(ValueError):
        migrated.transaction(work, retry=FAST_RETRY)
    assert len(calls) == 1


def test_session_reports_a_transient_failure_as_unavailable(migrated):
    with pytest.raises(Unavailable):
        with migrated.session():
            raise injected_transient(migrated)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_transaction_survives_a_real_dropped_connection(migrated):
    """The server kills the session's backend mid-transaction; the retry reconnects."""
    calls = []

    def work(s):
        calls.append(1)
        s.add(Widget(name="after-drop"))
        s.flush()
        if len(calls) == 1:
            s.execute(sa.text("SELECT pg_terminate_backend(pg_backend_pid())"))
        return len(calls)

    assert migrated.transaction(work, retry=FAST_RETRY) == 2
    assert count(migrated, Widget) == 1
    migrated.check()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_transaction_survives_a_real_locked_sqlite_database(db_url):
    """Another connection holds the write lock longer than the busy timeout; the retry waits it out."""
    db = Database(db_url, busy_timeout_s=0.05)
    migrate(db, EXAMPLE_MIGRATIONS, VERSION_TABLE)
    holder = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    timer = threading.Timer(0.5, holder.commit)
    timer.start()
    try:
        with pytest.raises(Unavailable):  # a plain session does not wait past the busy timeout
            with db.session() as s:
                s.add(Widget(name="blocked"))
        db.transaction(
            lambda s: s.add(Widget(name="patient")), retry=RetryPolicy(attempts=10, backoff_s=0.05)
        )
    finally:
        timer.join()
        holder.close()
    assert count(db, Widget) == 1
    db.dispose()


# -- URLs -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "",
        "not a url",
        "mysql://root@localhost/x",
        "postgresql+asyncpg://u@h/db",
        "sqlite://",
        "sqlite:///:memory:",
    ],
)
def test_invalid_urls_are_a_value_error(url):
    with pytest.raises(DatabaseURLError) as caught:
        create_engine(url)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+psycopg", "postgres"])
def test_postgres_urls_use_psycopg_3(scheme):
    engine = create_engine(f"{scheme}://u:secret@db.example:5432/meta")
    assert engine.dialect.driver == "psycopg"
    assert "secret" not in Database(engine).url


def test_sqlite_connections_are_configured(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/a/b/meta.db", busy_timeout_s=7)
    assert not (tmp_path / "a").exists()  # no I/O until first use
    db.check()
    assert (tmp_path / "a" / "b" / "meta.db").exists()
    with db.engine.connect() as conn:
        pragma = lambda name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
        assert pragma("journal_mode") == "wal"
        assert pragma("foreign_keys") == 1
        assert pragma("busy_timeout") == 7000
    db.dispose()
