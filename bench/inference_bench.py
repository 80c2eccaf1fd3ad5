"""Inference benchmark: loopml's inference server vs MLServer 1.7 on the same XGBoost model, through
the same protocol (Open Inference Protocol v2 over gRPC) and the same load generator.

    .venv/bin/python bench/inference_bench.py [--seconds 6] [--features 20] [--trees 100] \
        [--concurrency 1,4,16,64] [--batch64-concurrency 4,16] [--only CONFIGS] [--out bench-inference.json]

Needs .venv-triton (tritonclient, the load generator: bench/inference_loadgen.py, its own process)
and .venv-mlserver (`python3.11 -m venv .venv-mlserver && .venv-mlserver/bin/pip install -r
requirements/mlserver.txt`).

1. trains an XGBoost classifier (TREES trees of depth 6 on FEATURES numeric columns, n_jobs=1) and
   saves it as a loopml ModelBundle and as an XGBoost model.json for MLServer;
2. measures the in-process predict loop on 64-row batches (the physical limit): the bundle's own
   predict on a DataFrame (what the server runs) and bare XGBoost predict_proba on a NumPy array;
3. starts a registry (SQLite + local folder) and uploads the bundle (alias production), then for
   each server configuration starts the server as a subprocess, loads the model, and runs the load
   generator for batch 1 at each concurrency and for batch 64 (raw FP32 tensors);
4. prints a table and writes all figures as JSON, with the CPU seconds the server (its process
   tree) and the load generator spent per request: on 2 shared cores these say where the time goes.

Server configurations (each point reports every configuration; the summary takes each server's best):
  loopml            sync gRPC server (4 threads), no batching, OMP_NUM_THREADS=1, prediction log off
  loopml-batching   same, dynamic batching on (max 64 rows, 1 ms)
  loopml-greedy     same, dynamic batching that never waits (max 1024 rows, 0 ms): merges whatever
                    is queued while the model is busy, so concurrent 64-row requests share a call
  loopml-merge      same, dynamic batching of up to 256 rows (four 64-row requests) waiting up to 2 ms,
                    but only for requests other server threads are already serving (a lone request
                    never waits): merged model calls cost less per row
  mlserver          MLServer defaults
  mlserver-omp1     OMP_NUM_THREADS=1
  mlserver-omp1-ab  OMP_NUM_THREADS=1, adaptive batching (max_batch_size 64, max_batch_time 1 ms)
  mlserver-omp1-w2  OMP_NUM_THREADS=1, parallel_workers 2
  ceiling           not a model server: a bare synchronous gRPC ModelInfer answering a canned
                    prediction per row (no model, no checks, no interceptors). What gRPC and the
                    load generator alone reach on these cores: the ceiling of any Python server.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
TRITON_PYTHON = ROOT / ".venv-triton" / "bin" / "python"
MLSERVER = ROOT / ".venv-mlserver" / "bin" / "mlserver"
LOADGEN = ROOT / "bench" / "inference_loadgen.py"
#: gRPC worker threads of loopml (and of the ceiling server): on 2 cores 2-4 threads measured
#: 10-25% more requests/s than the runtime's default 16 (less GIL hand-over between threads).
WORKERS = 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def train(features: int, trees: int):
    from xgboost import XGBClassifier

    from loopml.modelkit import ColumnSpec, ModelBundle

    rng = np.random.default_rng(0)
    x = rng.normal(size=(5000, features)).astype(np.float32)
    y = (x[:, : features // 2].sum(axis=1) + rng.normal(size=5000) > 0).astype(int)
    names = [f"f{i}" for i in range(features)]
    model = XGBClassifier(n_estimators=trees, max_depth=6, n_jobs=1).fit(pd.DataFrame(x, columns=names), y)
    bundle = ModelBundle(
        model, "binary", [ColumnSpec(n, "numeric") for n in names], "y", class_labels=[0, 1], flavor="xgboost"
    )
    return bundle, model


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` and its live descendants (MLServer's workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # ended meanwhile
            stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += stats.get(current, (0, 0.0))[1]
        todo.extend(child for child, (parent, _) in stats.items() if parent == current)
    return total


def in_process(bundle, model, features: int, seconds: float) -> dict:
    rng = np.random.default_rng(1)
    batch = rng.normal(size=(64, features)).astype(np.float32)
    names = bundle.input_names

    def loop(fn) -> float:
        fn()
        rows, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            fn()
            rows += 64
        return rows / (time.perf_counter() - start)

    booster_only = model.get_booster()
    return {
        "bundle_predict_rows_per_s": loop(lambda: bundle.predict(pd.DataFrame(batch, columns=names))),
        "xgboost_predict_proba_numpy_rows_per_s": loop(lambda: model.predict_proba(batch)),
        "xgboost_inplace_predict_rows_per_s": loop(lambda: booster_only.inplace_predict(batch)),
    }


def serve_trivial(port: int) -> None:
    """The `ceiling` configuration's server (run as `inference_bench.py --serve-trivial PORT`)."""
    from concurrent import futures

    from loopml.oip.v2 import open_inference_pb2 as oip
    from loopml.oip.v2 import open_inference_pb2_grpc as oip_grpc

    class Canned(oip_grpc.GRPCInferenceServiceServicer):
        def ModelReady(self, request, context):
            return oip.ModelReadyResponse(ready=True)

        def ModelInfer(self, request, context):
            rows = request.inputs[0].shape[0]
            response = oip.ModelInferResponse(model_name=request.model_name, model_version="1", id=request.id)
            response.outputs.add(name="predictions", datatype="INT64", shape=[rows])
            response.raw_output_contents.append(bytes(8 * rows))
            return response

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=WORKERS))
    oip_grpc.add_GRPCInferenceServiceServicer_to_server(Canned(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


def start_trivial() -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "--serve-trivial", str(port)])
    address = f"127.0.0.1:{port}"
    wait_ready(address, "xgb")
    return process, address


def wait_ready(address: str, model: str, timeout: float = 120.0, load: bool = False) -> None:
    from loopml.oip.v2 import open_inference_pb2 as oip
    from loopml.oip.v2 import open_inference_pb2_grpc as oip_grpc

    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = oip_grpc.GRPCInferenceServiceStub(channel)
        while True:
            try:
                if load:
                    stub.RepositoryModelLoad(oip.RepositoryModelLoadRequest(model_name=model), timeout=30)
                if stub.ModelReady(oip.ModelReadyRequest(name=model), timeout=5).ready:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{address} not ready")
            time.sleep(0.3)


def loadgen(
    server_pid: int,
    address: str,
    model: str,
    input_name: str,
    batch: int,
    features: int,
    concurrency: int,
    seconds: float,
    output: str,
) -> dict:
    server_before = tree_cpu_seconds(server_pid)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    run = subprocess.run(
        [
            str(TRITON_PYTHON),
            str(LOADGEN),
            address,
            model,
            "",
            input_name,
            str(batch),
            str(features),
            str(concurrency),
            str(seconds),
            output,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=False,
    )
    if run.returncode != 0:
        raise RuntimeError(run.stderr)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    figure = json.loads(run.stdout.strip().splitlines()[-1])
    # CPU per request over the whole run (the load generator's warm-up second included).
    sent = max(1.0, figure["requests"] * (seconds + 1.0) / seconds)
    loadgen_cpu = (children.ru_utime + children.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    figure["server_cpu_ms_per_request"] = (tree_cpu_seconds(server_pid) - server_before) * 1000 / sent
    figure["loadgen_cpu_ms_per_request"] = loadgen_cpu * 1000 / sent
    return figure


class Registry:
    def __init__(self, folder: Path, bundle):
        from loopml.client.config import ClientConfig
        from loopml.client.registry import RegistryClient
        from loopml.modelkit import dump_bundle
        from loopml.registry.v1 import model_pb2

        self.address = f"127.0.0.1:{free_port()}"
        env = {
            **os.environ,
            "LOOPML_LISTEN_ADDRESS": self.address,
            "LOOPML_DATA_DIR": str(folder),
            "LOOPML_LOG_LEVEL": "WARNING",
        }
        self.process = subprocess.Popen([sys.executable, "-m", "loopml.services.registry"], env=env)
        config = ClientConfig(addresses={**ClientConfig().addresses, "registry": self.address})
        client = RegistryClient(config)
        deadline = time.monotonic() + 60
        while client.health() != "SERVING":
            if time.monotonic() > deadline:
                raise TimeoutError("registry did not start")
            time.sleep(0.3)
        data, _ = dump_bundle(bundle)
        version = client.upload_version(
            "xgb", data, create_model_if_missing=True, flavor=model_pb2.MODEL_FLAVOR_XGBOOST
        ).version
        client.set_alias("xgb", "production", version)
        client.close()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def start_loopml(
    folder: Path, registry: str, batching: bool, max_rows: int = 64, delay_ms: float = 1.0
) -> tuple[subprocess.Popen, str]:
    address = f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "LOOPML_LISTEN_ADDRESS": address,
        "LOOPML_DATA_DIR": str(folder),
        "LOOPML_REGISTRY_ADDRESS": registry,
        "LOOPML_PREDICTION_LOG_ENABLED": "false",
        "LOOPML_LOG_LEVEL": "WARNING",
        "LOOPML_BATCHING_ENABLED": str(batching).lower(),
        "LOOPML_BATCH_MAX_SIZE": str(max_rows),
        "LOOPML_BATCH_MAX_DELAY_MS": str(delay_ms),
        "LOOPML_MAX_WORKERS": str(WORKERS),
    }
    process = subprocess.Popen([sys.executable, "-m", "loopml.services.inference"], env=env)
    wait_ready(address, "xgb", load=True)
    return process, address


def start_mlserver(
    folder: Path, model, omp1: bool, adaptive: bool, workers: int
) -> tuple[subprocess.Popen, str]:
    folder.mkdir(parents=True, exist_ok=True)
    model_dir = folder / "xgb"
    model_dir.mkdir(exist_ok=True)
    model.save_model(model_dir / "model.json")
    grpc_port = free_port()
    (folder / "settings.json").write_text(
        json.dumps(
            {
                "grpc_port": grpc_port,
                "http_port": free_port(),
                "metrics_port": free_port(),
                "parallel_workers": workers,
                "debug": False,
            }
        )
    )
    settings = {
        "name": "xgb",
        "implementation": "mlserver_xgboost.XGBoostModel",
        "parameters": {"uri": "./model.json"},
    }
    if adaptive:
        settings.update(max_batch_size=64, max_batch_time=0.001)
    (model_dir / "model-settings.json").write_text(json.dumps(settings))
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)  # MLServer's own default unless the configuration sets it
    if omp1:
        env["OMP_NUM_THREADS"] = "1"
    process = subprocess.Popen(
        [str(MLSERVER), "start", str(folder)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    address = f"127.0.0.1:{grpc_port}"
    wait_ready(address, "xgb")
    return process, address


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--concurrency", default="1,4,16,64")
    parser.add_argument("--batch64-concurrency", default="4,16")
    parser.add_argument("--only", default="", help="comma separated configuration names")
    parser.add_argument("--out", default="bench-inference.json")
    parser.add_argument("--serve-trivial", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_trivial:
        serve_trivial(args.serve_trivial)
        return
    concurrencies = [int(c) for c in args.concurrency.split(",") if c]  # empty: no batch-1 points
    points = [(1, c) for c in concurrencies] + [
        (64, int(c)) for c in args.batch64_concurrency.split(",") if c
    ]

    bundle, model = train(args.features, args.trees)
    results: dict = {
        "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "load_average_before": Path("/proc/loadavg").read_text().split()[:3],
        "features": args.features,
        "trees": args.trees,
        "seconds": args.seconds,
        "in_process": in_process(bundle, model, args.features, 5.0),
        "servers": {},
    }
    print(json.dumps(results["in_process"], indent=1), flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="loopml-bench-"))
    registry = Registry(tmp / "registry", bundle)
    configs = {
        "loopml": lambda: start_loopml(tmp / "inference", registry.address, batching=False),
        "loopml-batching": lambda: start_loopml(tmp / "inference", registry.address, batching=True),
        "loopml-greedy": lambda: start_loopml(
            tmp / "inference", registry.address, batching=True, max_rows=1024, delay_ms=0
        ),
        "loopml-merge": lambda: start_loopml(
            tmp / "inference", registry.address, batching=True, max_rows=256, delay_ms=2
        ),
        "mlserver": lambda: start_mlserver(tmp / "ml1", model, omp1=False, adaptive=False, workers=1),
        "mlserver-omp1": lambda: start_mlserver(tmp / "ml2", model, omp1=True, adaptive=False, workers=1),
        "mlserver-omp1-ab": lambda: start_mlserver(tmp / "ml3", model, omp1=True, adaptive=True, workers=1),
        "mlserver-omp1-w2": lambda: start_mlserver(tmp / "ml4", model, omp1=True, adaptive=False, workers=2),
        "ceiling": start_trivial,
    }
    only = [c for c in args.only.split(",") if c]
    try:
        for name, start in configs.items():
            if only and name not in only:
                continue
            try:
                process, address = start()
            except Exception as exc:  # noqa: BLE001 - reported, the other configurations go on
                print(f"{name}: failed to start: {exc}", flush=True)
                results["servers"][name] = {"error": str(exc)}
                continue
            loopml = not name.startswith("mlserver")
            figures = {}
            try:
                for batch, concurrency in points:
                    figure = loadgen(
                        process.pid,
                        address,
                        "xgb",
                        "features" if loopml else "input-0",
                        batch,
                        args.features,
                        concurrency,
                        args.seconds,
                        "predictions" if loopml else "",
                    )
                    figures[f"b{batch}c{concurrency}"] = figure
                    print(
                        f"{name:18s} batch {batch:3d} conc {concurrency:3d}: "
                        f"{figure['requests_per_s']:8.1f} req/s "
                        f"{figure['rows_per_s']:9.1f} rows/s p50 {figure['p50_ms']:7.2f} ms "
                        f"p99 {figure['p99_ms']:7.2f} ms errors {figure['errors']} "
                        f"cpu/req server {figure['server_cpu_ms_per_request']:.3f} ms "
                        f"loadgen {figure['loadgen_cpu_ms_per_request']:.3f} ms",
                        flush=True,
                    )
            finally:
                process.terminate()
                process.wait(30)
            results["servers"][name] = figures
    finally:
        registry.stop()
    results["load_average_after"] = Path("/proc/loadavg").read_text().split()[:3]
    Path(args.out).write_text(json.dumps(results, indent=1))
    summarize(results, points)


def summarize(results: dict, points) -> None:
    def best(prefix: str, key: str):
        found = [(n, f[key]) for n, f in results["servers"].items() if n.startswith(prefix) and key in f]
        return max(found, key=lambda item: item[1]["requests_per_s"]) if found else None

    print("\npoint        loopml best (config)                  mlserver best (config)                ratio")
    for batch, concurrency in points:
        key = f"b{batch}c{concurrency}"
        ours, theirs = best("loopml", key), best("mlserver", key)
        if not ours or not theirs:
            continue
        ratio = ours[1]["requests_per_s"] / theirs[1]["requests_per_s"]
        print(
            f"{key:10s} {ours[1]['requests_per_s']:8.1f} req/s p99 {ours[1]['p99_ms']:6.2f} ({ours[0]:16s}) "
            f"{theirs[1]['requests_per_s']:8.1f} req/s p99 {theirs[1]['p99_ms']:6.2f} ({theirs[0]:16s}) "
            f"{ratio:5.2f}x"
        )
    for batch, concurrency in points:
        if batch != 64:
            continue
        for prefix in ("loopml", "ceiling"):
            found = best(prefix, f"b{batch}c{concurrency}")
            if not found:
                continue
            for name, limit in results["in_process"].items():
                print(
                    f"batch 64 conc {concurrency}: {found[1]['rows_per_s']:.0f} rows/s ({found[0]}) = "
                    f"{found[1]['rows_per_s'] / limit:.0%} of the in-process loop {name} ({limit:.0f})"
                )


if __name__ == "__main__":
    main()
