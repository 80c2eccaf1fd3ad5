"""The generated stubs in libs/protos/src are what scripts/gen_protos.py makes from protos/ (drift check)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from tests.protos._tools import GEN_SCRIPT, GENERATED_DIR, REPO_ROOT, run

NAMESPACE_DIR = GENERATED_DIR / "loopml"


def test_generated_stubs_are_up_to_date() -> None:
    result = run([sys.executable, GEN_SCRIPT, "--check"])
    assert result.returncode == 0, (
        "generated stubs are stale; run `make protos`\n" + result.stdout + result.stderr
    )


def test_check_reports_every_kind_of_drift(tmp_path: Path) -> None:
    out = tmp_path / "src"
    generated = run([sys.executable, GEN_SCRIPT, "--out", out])
    assert generated.returncode == 0, generated.stderr
    clean = run([sys.executable, GEN_SCRIPT, "--check", "--out", out])
    assert clean.returncode == 0, clean.stderr

    edited = out / "loopml" / "dataset" / "v1" / "dataset_service_pb2.py"
    edited.write_text(edited.read_text() + "# edited by hand\n")
    removed = out / "loopml" / "oip" / "v2" / "open_inference_pb2_grpc.py"
    removed.unlink()
    stale = out / "loopml" / "metrics" / "v1" / "old_pb2.py"
    stale.write_text("")

    drift = run([sys.executable, GEN_SCRIPT, "--check", "--out", out])
    assert drift.returncode == 1
    report = drift.stderr
    assert "differs" in report and "dataset/v1/dataset_service_pb2.py" in report
    assert "missing" in report and "oip/v2/open_inference_pb2_grpc.py" in report
    assert "stale" in report and "metrics/v1/old_pb2.py" in report

    # Regenerating repairs all three.
    assert run([sys.executable, GEN_SCRIPT, "--out", out]).returncode == 0
    assert run([sys.executable, GEN_SCRIPT, "--check", "--out", out]).returncode == 0
    assert not stale.exists()


def test_loopml_stays_a_namespace_package() -> None:
    assert NAMESPACE_DIR.is_dir()
    assert not (NAMESPACE_DIR / "__init__.py").exists(), "loopml/ is a PEP 420 namespace"
    for version_dir in sorted(NAMESPACE_DIR.glob("*/v*")):
        assert (version_dir / "__init__.py").is_file(), version_dir
        assert (version_dir.parent / "py.typed").is_file(), version_dir.parent


def _generated_modules() -> list[str]:
    return sorted(
        ".".join(path.relative_to(GENERATED_DIR).with_suffix("").parts)
        for path in NAMESPACE_DIR.rglob("*_pb2*.py")
    )


def test_every_generated_module_imports() -> None:
    modules = _generated_modules()
    assert "loopml.dataset.v1.dataset_service_pb2_grpc" in modules
    assert "loopml.oip.v2.open_inference_pb2_grpc" in modules
    for name in modules:
        module = importlib.import_module(name)
        assert Path(module.__file__).resolve().is_relative_to(GENERATED_DIR), (
            f"{name} imported from {module.__file__}, not from {GENERATED_DIR.relative_to(REPO_ROOT)}"
            " (is loopml-protos installed in editable mode?)"
        )


def test_every_generated_module_has_type_stubs() -> None:
    for path in NAMESPACE_DIR.rglob("*_pb2*.py"):
        assert path.with_suffix(".pyi").is_file(), path
