"""Registry benchmark: artifact upload/download throughput and ResolveModel latency.

    .venv/bin/python bench/registry_bench.py [--size-mb 100] [--rate 200] [--seconds 15]

Starts real registry servers as subprocesses (`python -m loopml.services.registry`) on loopback:
  1. local store + SQLite: upload and download a SIZE_MB artifact through the SDK (sha256
     computed client-side, verified by the server; download verified by the SDK);
  2. S3 (a moto server, through the minio SDK) + PostgreSQL: the same;
  3. PostgreSQL: ResolveModel by alias at RATE requests/s for SECONDS (open loop: requests
     are sent on schedule by a pool of threads, so a slow answer does not delay the next);
  4. alias-move-to-watcher latency, on the same replica and on a second replica.
PostgreSQL is LOOPML_TEST_PG_URL or postgresql://postgres@127.0.0.1:5432/postgres (a scratch
database is created and dropped).
"""

from __future__ import annotations

import argparse
import os
import queue
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from loopml.client.config import ClientConfig
from loopml.client.registry import RegistryClient

PG_SERVER = os.environ.get("LOOPML_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def scratch_pg():
    name = f"loopml_bench_{secrets.token_hex(4)}"
    url = make_url(PG_SERVER)
    admin = dict(
        host=url.host, port=url.port or 5432, user=url.username, dbname=url.database, autocommit=True
    )
    with psycopg.connect(**admin) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield url.set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(**admin) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextmanager
def moto_server():
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


@contextmanager
def registry_server(env: dict[str, str]):
    port = free_port()
    full_env = {
        **os.environ,
        "LOOPML_LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "LOOPML_LOG_LEVEL": "WARNING",
        **env,
    }
    process = subprocess.Popen([sys.executable, "-m", "loopml.services.registry"], env=full_env)
    client = RegistryClient(ClientConfig().with_address("registry", f"127.0.0.1:{port}"), actor="bench")
    try:
        deadline = time.monotonic() + 60
        while client.health() != "SERVING":
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("registry did not become SERVING")
            time.sleep(0.2)
        yield client
    finally:
        client.close()
        process.terminate()
        process.wait(30)


def throughput(client: RegistryClient, size_mb: int, label: str) -> dict:
    data = os.urandom(size_mb * 1024 * 1024)
    model = f"bench-{secrets.token_hex(3)}"
    client.create_model(model)
    started = time.perf_counter()
    version = client.upload_version(model, data, timeout=600)
    upload_s = time.perf_counter() - started
    started = time.perf_counter()
    downloaded = client.download(model, version=version.version, timeout=600)
    download_s = time.perf_counter() - started
    assert downloaded == data
    result = {
        "backend": label,
        "size_mb": size_mb,
        "upload_MBps": size_mb / upload_s,
        "download_MBps": size_mb / download_s,
    }
    print(
        f"{label:>14}: upload {result['upload_MBps']:.0f} MB/s ({upload_s:.2f} s), "
        f"download {result['download_MBps']:.0f} MB/s ({download_s:.2f} s) for {size_mb} MB",
        flush=True,
    )
    return result


def resolve_latency(client: RegistryClient, rate: float, seconds: float) -> dict:
    """Open-loop load from one asyncio client (grpc.aio): request i is sent at start + i/rate
    whatever happened to the earlier ones, and its latency is measured from send to answer."""
    import asyncio

    import grpc

    from loopml.common.v1 import refs_pb2
    from loopml.registry.v1 import registry_service_pb2 as pb
    from loopml.registry.v1 import registry_service_pb2_grpc

    client.upload_version("resolve-bench", b"model bytes", create_model_if_missing=True)
    client.set_alias("resolve-bench", "production", 1)
    request = pb.ResolveModelRequest(model=refs_pb2.ModelRef(name="resolve-bench", alias="production"))
    total = int(rate * seconds)

    async def run() -> tuple[list[float], int]:
        async with grpc.aio.insecure_channel(client.address) as channel:
            stub = registry_service_pb2_grpc.RegistryServiceStub(channel)
            for _ in range(200):  # warm up the channel and the server's connection pool
                await stub.ResolveModel(request, timeout=5)
            latencies: list[float] = []
            late = 0

            async def one() -> None:
                sent = time.perf_counter()
                response = await stub.ResolveModel(request, timeout=5)
                latencies.append(time.perf_counter() - sent)
                assert response.model_version.version == 1

            start = time.perf_counter() + 0.05
            tasks = []
            for i in range(total):
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -0.005:
                    late += 1
                tasks.append(asyncio.create_task(one()))
            await asyncio.gather(*tasks)
            return latencies, late, time.perf_counter() - start

    latencies, late, elapsed = asyncio.run(run())
    ms = sorted(x * 1000 for x in latencies)
    result = {
        "requests": total,
        "rate": rate,
        "p50_ms": statistics.median(ms),
        "p99_ms": ms[max(0, int(len(ms) * 0.99) - 1)],
        "max_ms": ms[-1],
        "sent_late": late,
        "achieved_rps": total / elapsed,
    }
    print(
        f"ResolveModel on PostgreSQL at {rate:.0f} req/s for {seconds:.0f} s ({total} requests): "
        f"p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms, max {result['max_ms']:.2f} ms, "
        f"achieved {result['achieved_rps']:.0f} req/s, {late} sent >5 ms late "
        f"(load average {os.getloadavg()[0]:.2f})",
        flush=True,
    )
    return result


def watch_latency(writer: RegistryClient, watcher: RegistryClient, label: str, moves: int = 20) -> dict:
    model = f"watch-{secrets.token_hex(3)}"
    writer.upload_version(model, b"a", create_model_if_missing=True)
    writer.upload_version(model, b"b")
    seen: queue.Queue = queue.Queue()
    events = watcher.watch(model, types=[6])  # ALIAS_SET

    def follow():
        for _ in events:
            seen.put(time.perf_counter())

    threading.Thread(target=follow, daemon=True).start()
    time.sleep(1.0)  # let the watch start
    delays = []
    for i in range(moves):
        sent = time.perf_counter()
        writer.set_alias(model, "production", 1 + i % 2)
        delays.append((seen.get(timeout=10) - sent) * 1000)
        time.sleep(0.05)
    events.cancel()
    delays.sort()
    print(
        f"alias move -> watcher ({label}): median {statistics.median(delays):.1f} ms, "
        f"max {delays[-1]:.1f} ms over {moves} moves",
        flush=True,
    )
    return {"label": label, "median_ms": statistics.median(delays), "max_ms": delays[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=15)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="loopml-bench-") as tmp:
        with registry_server({"LOOPML_DATA_DIR": str(Path(tmp) / "local")}) as client:
            throughput(client, args.size_mb, "local+sqlite")
        with scratch_pg() as pg_url, moto_server() as endpoint:
            s3 = {
                "LOOPML_DATA_DIR": str(Path(tmp) / "s3"),
                "LOOPML_DATABASE_URL": pg_url,
                "LOOPML_OBJECT_STORE_URL": "s3://bench/loopml",
                "LOOPML_S3_ENDPOINT": endpoint,
                "LOOPML_S3_ACCESS_KEY": "bench",
                "LOOPML_S3_SECRET_KEY": "bench-secret",
                "LOOPML_S3_REGION": "us-east-1",
            }
            with registry_server(s3) as client:
                throughput(client, args.size_mb, "s3(moto)+pg")
                resolve_latency(client, args.rate, args.seconds)
                with registry_server(s3) as replica:
                    watch_latency(client, client, "same replica")
                    watch_latency(client, replica, "second replica")


if __name__ == "__main__":
    main()
