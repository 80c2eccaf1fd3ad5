"""Dataset ingest benchmark: upload + convert to Parquet + profile through the real server.

    .venv/bin/python bench/dataset_ingest.py --size-mb 1024 [--backends local,s3] [--workdir /tmp/x]

Generates a CSV of about --size-mb MB (12 mixed columns: integers, reals, categoricals, a datetime,
a boolean, free text, a high-cardinality code), then measures on the same machine:

* `pyarrow.csv.read_csv` alone on that file, in a fresh process (the reference), before and after
  the uploads; every measurement starts with the file in the page cache;
* UploadDataset end to end (client streams 1 MiB chunks over loopback; the service spools them
  while converting to Parquet and profiling, then stores both copies), with the service in its own
  process so its peak RSS (VmHWM) and CPU time can be read, and the client's CPU time (this
  process); the transfer rate (bytes / time until the last chunk was accepted);
* the same against the S3 backend (a moto server, reached through the minio SDK like MinIO).

Prints a JSON record per measurement; --json-out writes them to a file too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

ROOT = Path(__file__).resolve().parent.parent
WORDS = np.array(
    "the quick brown fox jumps over lazy dog data model churn price plan user order ship late early".split()
)


def generate(path: Path, size_mb: int, seed: int = 1) -> int:
    """Write a CSV of about size_mb MB in 200 000-row blocks; return the row count."""
    rng = np.random.default_rng(seed)
    target = size_mb * 1024 * 1024
    rows, block = 0, 200_000
    categories = np.array([f"cat_{i}" for i in range(12)])
    regions = np.array([f"region_{i:02d}" for i in range(60)])
    start = np.datetime64("2020-01-01T00:00:00")
    with open(path, "wb") as out:
        first = True
        while out.tell() < target:
            ids = np.arange(rows, rows + block)
            words = WORDS[rng.integers(0, len(WORDS), (block, 5))]
            table = pa.table(
                {
                    "id": ids,
                    "event_time": (start + rng.integers(0, 5 * 365 * 86400, block).astype("timedelta64[s]")),
                    "amount": np.round(rng.lognormal(3, 1, block), 2),
                    "quantity": rng.integers(1, 50, block),
                    "price": np.round(rng.uniform(1, 500, block), 2),
                    "score": rng.normal(0, 1, block),
                    "category": categories[rng.integers(0, len(categories), block)],
                    "region": regions[rng.integers(0, len(regions), block)],
                    "is_member": np.where(rng.random(block) < 0.3, "yes", "no"),
                    "comment": [" ".join(w) for w in words],
                    "code": [f"K{x:08x}" for x in rng.integers(0, 2**32, block)],
                    "label": (rng.random(block) < 0.2).astype("int8"),
                }
            )
            pacsv.write_csv(table, out, write_options=pacsv.WriteOptions(include_header=first))
            first = False
            rows += block
    return rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
            return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto did not start")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_service(env_extra: dict, workdir: Path) -> tuple[subprocess.Popen, str]:
    """The dataset service on an empty database and store (a previous run's version of the same
    bytes would make the upload a no-op)."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    port = free_port()
    env = {
        **os.environ,
        "LOOPML_LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "LOOPML_DATA_DIR": str(workdir / "data"),
        "LOOPML_CHECK_LINEAGE": "false",
        "LOOPML_LOG_LEVEL": "WARNING",
        "LOOPML_SPOOL_DIR": str(workdir),
        **env_extra,
    }
    proc = subprocess.Popen([sys.executable, "-m", "loopml.services.dataset"], env=env)
    from loopml.client.config import ClientConfig
    from loopml.client.datasets import DatasetClient

    client = DatasetClient(ClientConfig().with_address("dataset", f"127.0.0.1:{port}"))
    for _ in range(600):
        if client.health() == "SERVING":
            break
        time.sleep(0.1)
    client.close()
    return proc, f"127.0.0.1:{port}"


def measure_upload(path: Path, backend: str, env_extra: dict, workdir: Path) -> dict:
    from loopml.client.config import ClientConfig
    from loopml.client.datasets import DatasetClient

    proc, address = run_service(env_extra, workdir)
    try:
        client = DatasetClient(ClientConfig().with_address("dataset", address))
        size = path.stat().st_size
        sent_at = {}

        def progress(sent: int, total: int) -> None:
            if sent >= total:
                sent_at["t"] = time.perf_counter()

        warm_page_cache(path)
        cpu_before = cpu_seconds(proc.pid)
        client_cpu_before = time.process_time()  # this process is the client
        start = time.perf_counter()
        result = client.upload(path, name="bench", label_column="label", progress=progress)
        end = time.perf_counter()
        service_cpu = cpu_seconds(proc.pid) - cpu_before
        client_cpu = time.process_time() - client_cpu_before
        profile_start = time.perf_counter()
        profile = client.profile(result.version.ref.dataset_id)
        profile_fetch = time.perf_counter() - profile_start
        client.close()
        rss = peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
    transfer = sent_at.get("t", end) - start
    return {
        "measure": f"upload+convert+profile ({backend})",
        "backend": backend,
        "bytes": size,
        "rows": result.version.row_count,
        "seconds_end_to_end": round(end - start, 2),
        "service_cpu_seconds": round(service_cpu, 2),
        "client_cpu_seconds": round(client_cpu, 2),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "seconds_transfer": round(transfer, 2),
        "transfer_mb_per_s": round(size / 1e6 / transfer, 1),
        "end_to_end_mb_per_s": round(size / 1e6 / (end - start), 1),
        "service_peak_rss_mb": round(rss, 1),
        "profile_columns": len(profile.columns),
        "profile_warnings": [w.message for w in profile.warnings],
        "get_profile_seconds": round(profile_fetch, 3),
    }


def measure_store_put(path: Path, backend: str, store) -> dict:
    """How fast the object store takes the file (what the service does with the original bytes)."""
    start = time.perf_counter()
    with open(path, "rb") as f:
        store.put("bench/original.csv", f)
    elapsed = time.perf_counter() - start
    store.delete("bench/original.csv")
    return {
        "measure": f"ObjectStore.put ({backend})",
        "bytes": path.stat().st_size,
        "seconds": round(elapsed, 2),
        "mb_per_s": round(path.stat().st_size / 1e6 / elapsed, 1),
    }


_READ_CSV = """
import json, sys, time
import pyarrow.csv as pacsv
cpu, start = time.process_time(), time.perf_counter()
rows = pacsv.read_csv(sys.argv[1]).num_rows
print(json.dumps([rows, time.perf_counter() - start, time.process_time() - cpu]))
"""


def warm_page_cache(path: Path) -> None:
    """Read the file once, so that every measurement starts with it in the page cache (a file read
    from disk costs read_csv about twice the CPU time on this machine, and the uploads read it warm)."""
    with open(path, "rb") as f:
        while f.read(16 << 20):
            pass


def measure_read_csv(path: Path) -> dict:
    """`pyarrow.csv.read_csv` in a fresh process, as the service is one, on a warm page cache."""
    warm_page_cache(path)
    out = subprocess.run([sys.executable, "-c", _READ_CSV, str(path)], check=True, capture_output=True)
    rows, elapsed, cpu = json.loads(out.stdout)
    return {
        "measure": "pyarrow.csv.read_csv (fresh process)",
        "bytes": path.stat().st_size,
        "rows": rows,
        "seconds": round(elapsed, 2),
        "cpu_seconds": round(cpu, 2),
        "mb_per_s": round(path.stat().st_size / 1e6 / elapsed, 1),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--backends", default="local,s3")
    parser.add_argument("--workdir", default="")
    parser.add_argument("--json-out", default="")
    parser.add_argument("--store-only", action="store_true", help="Only time ObjectStore.put per backend.")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="loopml-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"bench_{args.size_mb}mb.csv"
    records = []
    if not path.exists():
        t = time.perf_counter()
        rows = generate(path, args.size_mb)
        print(
            f"generated {path} ({path.stat().st_size / 1e6:.0f} MB, {rows} rows) "
            f"in {time.perf_counter() - t:.0f}s",
            flush=True,
        )

    def record(r: dict) -> None:
        records.append(r)
        print(json.dumps(r), flush=True)

    if args.store_only:
        from loopml.runtime.objectstore import open_object_store

        for backend in args.backends.split(","):
            if backend == "local":
                store = open_object_store(str(workdir / "store-local"))
                record(measure_store_put(path, "local", store))
            elif backend == "s3":
                moto, endpoint = start_moto()
                try:
                    store = open_object_store(
                        "s3://bench/loopml",
                        s3_endpoint=endpoint,
                        s3_access_key="bench",
                        s3_secret_key="bench-secret",
                        s3_region="us-east-1",
                    )
                    record(measure_store_put(path, "s3 (moto)", store))
                finally:
                    moto.terminate()
                    moto.wait(30)
        return 0
    record(measure_read_csv(path))
    for backend in args.backends.split(","):
        if backend == "local":
            record(measure_upload(path, "local", {}, workdir / "run-local"))
        elif backend == "s3":
            moto, endpoint = start_moto()
            try:
                env = {
                    "LOOPML_OBJECT_STORE_URL": "s3://bench/loopml",
                    "LOOPML_S3_ENDPOINT": endpoint,
                    "LOOPML_S3_ACCESS_KEY": "bench",
                    "LOOPML_S3_SECRET_KEY": "bench-secret",
                    "LOOPML_S3_REGION": "us-east-1",
                }
                record(measure_upload(path, "s3 (moto)", env, workdir / "run-s3"))
            finally:
                moto.terminate()
                moto.wait(30)
    record(measure_read_csv(path))  # again, to see the machine's drift between the first and the last
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(records, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
