"""The images' `migrate` command creates each database service's schema and exits, without
serving: what the Kubernetes Job and `docker compose run <service> migrate` run."""

from __future__ import annotations

import os
import subprocess
import sys

import sqlalchemy

from tests.deploy._processes import command_argv

DATABASE_SERVICES = ("dataset", "trainer", "registry", "metrics")


def test_migrate_creates_each_schema_in_the_shared_database_and_exits(fresh_pg_url, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    env.update({
        "LOOPML_DATABASE_URL": fresh_pg_url,  # one database for all, as in compose
        "LOOPML_DATA_DIR": str(tmp_path),
        "LOOPML_MIGRATE_ON_START": "false",  # as in the image: only the command migrates
        "LOOPML_LISTEN_ADDRESS": "0.0.0.0:1",  # must not be bound: migrate serves nothing
    })
    runs = {}
    for service in DATABASE_SERVICES:  # concurrently, like the Job's four containers
        argv = command_argv(service, ["migrate"])
        assert argv[:3] == [sys.executable, "-m", "loopml.runtime.entrypoint"]
        runs[service] = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    for service, process in runs.items():
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, f"{service}: {err[-3000:]}"
        assert f"{service}: migrations applied" in out
    engine = sqlalchemy.create_engine(fresh_pg_url)
    try:
        tables = set(sqlalchemy.inspect(engine).get_table_names())
        with engine.connect() as connection:
            for service in DATABASE_SERVICES:
                query = sqlalchemy.text(f"SELECT version_num FROM alembic_version_{service}")
                assert len(connection.execute(query).all()) == 1, service
    finally:
        engine.dispose()
    for service in DATABASE_SERVICES:
        assert [t for t in tables if t.startswith(service)], f"no {service}_* tables: {tables}"
