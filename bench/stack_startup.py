"""How long `loopml up` takes from the command to all five services SERVING (target: under 10 s).

    .venv/bin/python bench/stack_startup.py --runs 3
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOOPML = str(Path(sys.executable).with_name("loopml"))


def one_run(base_port: int) -> float:
    with tempfile.TemporaryDirectory() as data:
        started = time.monotonic()
        process = subprocess.Popen([LOOPML, "--json", "up", "--data-dir", data, "--base-port", str(base_port)],
                                   stdout=subprocess.PIPE, text=True)
        output = ""
        while True:
            line = process.stdout.readline()
            if not line:
                raise SystemExit(f"loopml up exited: {output}")
            output += line
            if line.startswith("}"):
                break
        elapsed = time.monotonic() - started
        report = json.loads(output[output.index("{"):])
        assert report["status"] == "SERVING"
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--base-port", type=int, default=56051)
    args = parser.parse_args()
    times = [one_run(args.base_port) for _ in range(args.runs)]
    print(json.dumps({"seconds_to_serving": [round(t, 2) for t in times], "best": round(min(times), 2),
                      "worst": round(max(times), 2)}))


if __name__ == "__main__":
    main()
