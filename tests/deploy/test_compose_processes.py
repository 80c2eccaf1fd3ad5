"""The compose wiring, run for real without Docker: every loopml service of deploy/docker-compose.yml
starts with its image's entry point, its compose command and its compose environment (from
.env.example, auth on) as a local process. Host names become 127.0.0.1 ports, PostgreSQL is the
machine's, a moto S3 server stands in for MinIO (the bucket created as minio-init does)."""

from __future__ import annotations

import urllib.request
from urllib.parse import urlsplit

import grpc
import pytest
from sqlalchemy.engine import make_url

from loopml.runtime.healthcheck import check
from tests.deploy import _processes
from tests.deploy._repo import compose, env_example, loopml_services
from tests.deploy._rpcs import ANSWERED, call_read_rpc


@pytest.fixture
def compose_stack(tmp_path, fresh_pg_url, s3_endpoint, s3_client, s3_bucket):
    spec = compose()
    runs = loopml_services(spec)  # compose service -> loopml service (trainer-worker -> trainer)
    api = {name: svc for name, svc in runs.items() if name == svc}
    local = {name: f"127.0.0.1:{_processes.free_port()}" for name in api}
    hosts = {}
    for name in api:
        compose_address = spec["services"][name]["environment"][f"LOOPML_{name.upper()}_ADDRESS"]
        hosts[compose_address] = local[name]
    s3_client.make_bucket(s3_bucket)  # what minio-init does
    pg = make_url(fresh_pg_url)
    started = []
    for name, service in runs.items():
        env = {k: str(v) for k, v in spec["services"][name]["environment"].items()}
        compose_db = make_url(env["LOOPML_DATABASE_URL"])
        assert compose_db.host == "postgres"
        env = {k: _processes.map_hosts(v, hosts) for k, v in env.items()}
        # PostgreSQL on this machine: its host, port, user and a fresh database replace the compose ones.
        env["LOOPML_DATABASE_URL"] = compose_db.set(
            host=pg.host, port=pg.port, username=pg.username, password=pg.password, database=pg.database
        ).render_as_string(hide_password=False)
        assert env["LOOPML_S3_ENDPOINT"] == "minio:9000"
        env["LOOPML_S3_ENDPOINT"] = s3_endpoint
        assert urlsplit(env["LOOPML_OBJECT_STORE_URL"]).scheme == "s3"
        env["LOOPML_OBJECT_STORE_URL"] = f"s3://{s3_bucket}"
        assert env["LOOPML_LISTEN_ADDRESS"].startswith("0.0.0.0:")
        env["LOOPML_LISTEN_ADDRESS"] = local.get(name, f"127.0.0.1:{_processes.free_port()}")
        env["LOOPML_PROMETHEUS_ADDRESS"] = f"127.0.0.1:{_processes.free_port()}"
        env["LOOPML_DATA_DIR"] = str(tmp_path / name)
        started.append(_processes.start(name, service, spec["services"][name]["command"], env, tmp_path))
        started[-1].prometheus = env["LOOPML_PROMETHEUS_ADDRESS"]
        started[-1].serves = name in api
    try:
        yield started
    finally:
        codes = {s.name: s.terminate() for s in started}
        assert codes == {s.name: 0 for s in started}, "a service did not stop cleanly on SIGTERM"


def test_the_compose_wiring_serves_every_service_end_to_end(compose_stack):
    tokens = env_example()["LOOPML_AUTH_TOKENS"]
    read_token = dict(e.split(":", 1) for e in tokens.split(","))["read"]
    servers = [s for s in compose_stack if s.serves]
    status = _processes.wait_serving(servers, lambda address: check(address, timeout_s=2))
    assert set(status.values()) == {"SERVING"} and len(status) == 5
    workers = [s for s in compose_stack if not s.serves]
    assert [w.name for w in workers] == ["trainer-worker"]
    assert workers[0].process.poll() is None, workers[0].log()  # running (it stops with 0 at teardown)

    answered = {}
    for service in servers:
        with grpc.insecure_channel(service.address) as channel:
            code, _ = call_read_rpc(channel, service.name)
            assert code == grpc.StatusCode.UNAUTHENTICATED, f"{service.name} answered without a token"
            code, _ = call_read_rpc(channel, service.name, token=read_token)
            assert code in ANSWERED, f"{service.name}: {code}\n{service.log()[-2000:]}"
            answered[service.name] = code.name
        with urllib.request.urlopen(f"http://{service.prometheus}/metrics", timeout=5) as response:
            assert b"loopml_grpc_server_handled_total" in response.read()
    print("read RPC per service:", answered)
