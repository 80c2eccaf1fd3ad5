"""Load generator of the inference benchmark: tritonclient (gRPC, asyncio), raw FP32 tensors.

Runs in .venv-triton (tritonclient cannot share a process with loopml's OIP stubs):

    .venv-triton/bin/python bench/inference_loadgen.py ADDRESS MODEL VERSION INPUT BATCH FEATURES \
        CONCURRENCY SECONDS [OUTPUT]

Closed loop: CONCURRENCY coroutines each send a request, wait for the answer, send the next. The
first second is warm-up and not counted. Prints one JSON object: requests/s, rows/s, latency
percentiles (ms), errors.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import numpy as np
import tritonclient.grpc as tc
from tritonclient.grpc.aio import InferenceServerClient


async def main() -> None:
    address, model, version, input_name = sys.argv[1:5]
    batch, features, concurrency = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
    seconds = float(sys.argv[8])
    output = sys.argv[9] if len(sys.argv) > 9 else ""
    client = InferenceServerClient(address)
    rng = np.random.default_rng(0)
    payloads = [rng.normal(size=(batch, features)).astype(np.float32) for _ in range(16)]
    outputs = [tc.InferRequestedOutput(output)] if output else None
    latencies: list[float] = []
    errors = 0
    warm_until = time.perf_counter() + 1.0
    end = warm_until + seconds

    async def worker(index: int) -> None:
        nonlocal errors
        i = index
        while True:
            tensor = tc.InferInput(input_name, [batch, features], "FP32")
            tensor.set_data_from_numpy(payloads[i % len(payloads)])
            i += 1
            start = time.perf_counter()
            if start >= end:
                return
            try:
                await client.infer(model, [tensor], model_version=version, outputs=outputs)
            except Exception:  # noqa: BLE001 - counted
                if start >= warm_until:
                    errors += 1
                continue
            if start >= warm_until:
                latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    await client.close()
    lat = np.asarray(latencies) * 1000.0
    done = len(latencies)
    print(
        json.dumps(
            {
                "requests_per_s": done / seconds,
                "rows_per_s": done * batch / seconds,
                "p50_ms": float(np.percentile(lat, 50)) if done else None,
                "p99_ms": float(np.percentile(lat, 99)) if done else None,
                "errors": errors,
                "requests": done,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
