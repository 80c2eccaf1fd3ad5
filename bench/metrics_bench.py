"""Metrics service benchmark: prediction-record ingest, a 24-hour QueryMetrics over 1M points,
and a drift report over 100k predictions. Real gRPC server in-process, real databases.

    .venv/bin/python bench/metrics_bench.py --backend postgresql --backend sqlite

PostgreSQL: a throw-away database on LOOPML_TEST_PG_URL's server (default 127.0.0.1:5432).
"""

from __future__ import annotations

import argparse
import multiprocessing
import secrets
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg

from loopml.client.config import ClientConfig
from loopml.client.metrics import MetricsClient, timestamp
from loopml.common.v1 import value_pb2
from loopml.metrics.v1 import metrics_pb2
from loopml.services.metrics.core import drift
from loopml.services.metrics.server import MetricsDeps, make_server
from loopml.services.metrics.settings import MetricsSettings

NOWHERE = "127.0.0.1:9"
PROBS = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)


def pg_database() -> tuple[str, str]:
    name = f"loopml_bench_{secrets.token_hex(4)}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return name, f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_pg(name: str) -> None:
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def records(start: int, n: int, at: float, rng) -> list[metrics_pb2.PredictionRecord]:
    """n one-row records with 4 numeric and 1 categorical input and class probabilities (what
    inference's batched writer sends)."""
    x = rng.normal(size=(n, 4))
    out = []
    for i in range(n):
        r = metrics_pb2.PredictionRecord(request_id=f"req-{start + i}", model_name="bench", model_version=1)
        r.time.CopyFrom(timestamp(at + i * 1e-3))
        r.inputs.row_count = 1
        for k in range(4):
            r.inputs.columns.add(name=f"f{k}", double_values=value_pb2.DoubleArray(values=[x[i, k]]))
        r.inputs.columns.add(
            name="color", string_values=value_pb2.StringArray(values=["red" if x[i, 0] > 0 else "blue"])
        )
        r.predictions.string_values.values.append("yes" if x[i, 1] > 0 else "no")
        r.probabilities.class_labels.add(string_value="no")
        r.probabilities.class_labels.add(string_value="yes")
        r.probabilities.values.extend([0.4, 0.6])
        out.append(r)
    return out


def _sender(address: str, first: int, total: int, batch: int, ready, go, done) -> None:
    """One client process (like one inference replica's batched writer): build, then send."""
    rng = np.random.default_rng(first)
    batches = [
        records(first + i, min(batch, total - i), time.time() - 600, rng) for i in range(0, total, batch)
    ]
    client = MetricsClient(ClientConfig(addresses={"metrics": address}, timeout_s=600))
    ready.set()
    go.wait()
    for b in batches:
        assert client.record_predictions(b).accepted_count == len(b)
    client.close()
    done.set()


def bench_ingest(address: str, total: int, batch: int, senders: int) -> float:
    """Records/s with `senders` client processes sending at once (the server is this process)."""
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    per = total // senders
    procs, readies, dones = [], [], []
    for k in range(senders):
        ready, done = ctx.Event(), ctx.Event()
        proc = ctx.Process(target=_sender, args=(address, k * per, per, batch, ready, go, done))
        proc.start()
        procs.append(proc)
        readies.append(ready)
        dones.append(done)
    for ready in readies:
        ready.wait()
    started = time.perf_counter()
    go.set()
    for done in dones:
        done.wait()
    elapsed = time.perf_counter() - started
    for proc in procs:
        proc.join()
    return per * senders / elapsed


def bench_query(
    client: MetricsClient, server, points: int, series: int, runs: int
) -> tuple[float, float, float]:
    end = (time.time() // 3600) * 3600
    start = end - 86400
    per_series = points // series
    load_started = time.perf_counter()
    batch = []
    for s in range(series):
        ts = np.linspace(start, end - 1, per_series)
        vals = np.random.default_rng(s).gamma(2.0, 0.05, per_series)
        for t, v in zip(ts, vals, strict=False):
            batch.append(
                metrics_pb2.MetricPoint(
                    name="loopml_request_seconds",
                    labels={"route": f"r{s}"},
                    value=float(v),
                    time=timestamp(float(t)),
                )
            )
            if len(batch) == 20_000:
                client.call("RecordMetrics", metrics_pb2_request(batch))
                batch = []
    if batch:
        client.call("RecordMetrics", metrics_pb2_request(batch))
    load_s = time.perf_counter() - load_started
    timings = []
    for i in range(runs):
        agg = ("avg", "max", "sum", "count")[i % 4]
        t0 = time.perf_counter()
        result = client.query("loopml_request_seconds", start=start, end=end, step_s=300, aggregation=agg)
        timings.append((time.perf_counter() - t0) * 1000)
        assert len(result) == series and len(result[0].samples) == 288
    timings.sort()
    return load_s, timings[int(0.95 * (len(timings) - 1))], statistics.median(timings)


def metrics_pb2_request(points):
    from loopml.metrics.v1 import metrics_service_pb2

    return metrics_service_pb2.RecordMetricsRequest(points=points)


class BenchReference:
    def reference_for(self, model_name, version, dataset_id="", dataset_version=0, split_id=""):
        sample = np.random.default_rng(0).normal(size=10_000)
        feats = {
            f"f{k}": drift.FeatureReference(
                f"f{k}",
                drift.NUMERIC,
                "numeric",
                10_000,
                0,
                tuple((p, float(np.quantile(sample, p))) for p in PROBS),
            )
            for k in range(4)
        }
        feats["color"] = drift.FeatureReference(
            "color", drift.CATEGORICAL, "categorical", 10_000, 0, top_values=(("red", 5000), ("blue", 5000))
        )
        label = drift.FeatureReference(
            "label", drift.CATEGORICAL, "categorical", 10_000, 0, top_values=(("yes", 5000), ("no", 5000))
        )
        return drift.Reference(10_000, feats, label)


def bench_drift(client: MetricsClient, rows: int, already: int, runs: int) -> list[float]:
    rng = np.random.default_rng(2)
    for i in range(already, rows, 10_000):
        client.record_predictions(records(i, min(10_000, rows - i), time.time() - 300, rng))
    timings = []
    for _ in range(runs):
        t0 = time.perf_counter()
        report = client.drift("bench", 1, window_s=3600)
        timings.append(time.perf_counter() - t0)
        assert report.live_row_count >= rows
    return timings


def run(backend: str, args) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="loopml-bench-"))
    pg_name = None
    settings = dict(
        data_dir=data_dir,
        listen_address="127.0.0.1:0",
        registry_address=NOWHERE,
        dataset_address=NOWHERE,
        trainer_address=NOWHERE,
        maintenance_interval_s=0,
        alert_evaluation_interval_s=0,
        gauge_refresh_interval_s=0,
        call_timeout_s=600,
    )
    if backend == "postgresql":
        pg_name, url = pg_database()
        settings["database_url"] = url
    server = make_server(MetricsSettings(**settings), MetricsDeps(references=BenchReference())).start()
    client = MetricsClient(ClientConfig(addresses={"metrics": server.address}, timeout_s=600))
    try:
        rate = bench_ingest(server.address, args.records, args.batch, args.senders)
        print(
            f"[{backend}] RecordPredictions ingest: {args.records} records in batches of {args.batch} "
            f"from {args.senders} client process(es): {rate:,.0f} records/s",
            flush=True,
        )
        if not args.skip_query:
            load_s, p95, median = bench_query(client, server, args.points, args.series, args.runs)
            print(
                f"[{backend}] QueryMetrics 24 h, {args.points:,} points in {args.series} series, step 5 min: "
                f"p95 {p95:.1f} ms, median {median:.1f} ms (loading took {load_s:.0f} s)",
                flush=True,
            )
        timings = bench_drift(client, args.drift_rows, args.records, 5)
        print(
            f"[{backend}] GetDriftReport over {max(args.drift_rows, args.records):,} predictions (5 inputs + "
            f"prediction): median {statistics.median(timings):.2f} s, max {max(timings):.2f} s",
            flush=True,
        )
    finally:
        client.close()
        server.stop(0)
        if pg_name:
            drop_pg(pg_name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", action="append", choices=["postgresql", "sqlite"])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--senders", type=int, default=1, help="client processes sending at once")
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--series", type=int, default=10)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--drift-rows", type=int, default=100_000)
    parser.add_argument("--skip-query", action="store_true")
    args = parser.parse_args()
    for backend in args.backend or ["postgresql", "sqlite"]:
        run(backend, args)


if __name__ == "__main__":
    main()
