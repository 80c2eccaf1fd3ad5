#!/usr/bin/env python3
"""Generate the Python stubs of the protos into the loopml-protos distribution.

    .venv/bin/python scripts/gen_protos.py           # regenerate libs/protos/src/loopml/
    .venv/bin/python scripts/gen_protos.py --check   # drift check: exit 1 if the committed stubs differ

Inputs are the two buf modules under protos/ (our loopml.* packages, and the Open Inference Protocol
under protos/oip/). Outputs, under libs/protos/src/:

    loopml/<pkg>/v1/<file>_pb2.py       messages          (protoc --python_out)
    loopml/<pkg>/v1/<file>_pb2.pyi      message types     (mypy-protobuf --mypy_out)
    loopml/<pkg>/v1/<file>_pb2_grpc.py  stubs, servicers  (grpc --grpc_python_out; service files only)
    loopml/<pkg>/v1/<file>_pb2_grpc.pyi their types       (mypy-protobuf --mypy_grpc_out; service files only)
    loopml/oip/v2/open_inference_*      the same for the Open Inference Protocol

plus an empty __init__.py in every package below loopml/ and a py.typed marker in every top-level one
(loopml/<pkg>/). loopml/ itself gets no __init__.py: it is a PEP 420 namespace shared with the other
loopml distributions (runtime, client, services).

The output is a pure function of the .proto files and the pinned tool versions (grpcio-tools,
mypy-protobuf), so --check regenerates into a temporary folder and compares byte for byte. The whole
libs/protos/src/loopml/ tree belongs to this script: files there that it no longer produces are
removed.
"""

from __future__ import annotations

import argparse
import difflib
import filecmp
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTOS_DIR = REPO_ROOT / "protos"
OUTPUT_ROOT = REPO_ROOT / "libs" / "protos" / "src"
# The generated tree, relative to OUTPUT_ROOT. Everything below it is owned by this script.
NAMESPACE = "loopml"

_SERVICE_RE = re.compile(r"^\s*service\s+\w+", re.MULTILINE)
_IGNORED_NAMES = {"__pycache__"}
_IGNORED_SUFFIXES = {".pyc", ".pyo"}


@dataclass(frozen=True)
class ProtoModule:
    """One buf module: an include root and the folder of .proto files below it to compile."""

    root: Path
    subdir: str = NAMESPACE

    def files(self) -> list[str]:
        """The module's .proto files, relative to its root, in a stable order."""
        base = self.root / self.subdir
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*.proto"))


MODULES = (
    ProtoModule(PROTOS_DIR),  # loopml.common.v1, loopml.<service>.v1
    ProtoModule(PROTOS_DIR / "oip"),  # package inference, generated as loopml.oip.v2
)


def _well_known_types_dir() -> Path:
    import grpc_tools

    path = Path(grpc_tools.__file__).resolve().parent / "_proto"
    if not (path / "google" / "protobuf" / "timestamp.proto").is_file():
        raise SystemExit(f"gen_protos: well-known .proto files not found under {path}")
    return path


def _plugin(name: str) -> Path:
    """A protoc plugin installed next to this interpreter (the project's virtualenv)."""
    exe_suffix = ".exe" if os.name == "nt" else ""
    candidate = Path(sys.executable).parent / f"{name}{exe_suffix}"
    if candidate.is_file():
        return candidate
    found = shutil.which(name)
    if found:
        return Path(found)
    raise SystemExit(f"gen_protos: {name} not found; install mypy-protobuf into the virtualenv")


def _protoc(args: list[str], cwd: Path) -> None:
    cmd = [sys.executable, "-m", "grpc_tools.protoc", *args]
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"gen_protos: protoc failed (exit {result.returncode})")
    if result.stderr.strip():  # warnings (e.g. unused imports) are errors here: keep output clean
        sys.stderr.write(result.stderr)
        raise SystemExit("gen_protos: protoc printed warnings")


def _has_service(proto_file: Path) -> bool:
    return bool(_SERVICE_RE.search(proto_file.read_text(encoding="utf-8")))


def generate(out_dir: Path) -> None:
    """Compile every module into out_dir (which must exist and be empty)."""
    wkt = _well_known_types_dir()
    mypy = _plugin("protoc-gen-mypy")
    mypy_grpc = _plugin("protoc-gen-mypy_grpc")
    for module in MODULES:
        files = module.files()
        if not files:
            raise SystemExit(f"gen_protos: no .proto files under {module.root / module.subdir}")
        includes = [f"--proto_path={module.root}", f"--proto_path={wkt}"]
        # Messages (+ .pyi) for every file.
        _protoc(
            [
                *includes,
                f"--plugin=protoc-gen-mypy={mypy}",
                f"--python_out={out_dir}",
                f"--mypy_out=quiet:{out_dir}",
                *files,
            ],
            cwd=module.root,
        )
        # Service stubs (+ .pyi) only for files that declare a service, so no empty *_pb2_grpc.py.
        service_files = [f for f in files if _has_service(module.root / f)]
        if service_files:
            _protoc(
                [
                    *includes,
                    f"--plugin=protoc-gen-mypy_grpc={mypy_grpc}",
                    f"--grpc_python_out={out_dir}",
                    f"--mypy_grpc_out=quiet:{out_dir}",
                    *service_files,
                ],
                cwd=module.root,
            )
    _add_package_markers(out_dir / NAMESPACE)


def _add_package_markers(namespace_dir: Path) -> None:
    """__init__.py in every package below the namespace, py.typed in each top-level package."""
    if (namespace_dir / "__init__.py").exists():
        raise SystemExit("gen_protos: loopml/__init__.py must not exist (PEP 420 namespace)")
    for top in sorted(p for p in namespace_dir.iterdir() if p.is_dir()):
        (top / "py.typed").write_bytes(b"")
        for package in sorted([top, *(p for p in top.rglob("*") if p.is_dir())]):
            (package / "__init__.py").write_bytes(b"")


def _tree(root: Path) -> dict[str, Path]:
    """Relative posix path -> file, for every generated-looking file below root."""
    if not root.is_dir():
        return {}
    files: dict[str, Path] = {}
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if any(part in _IGNORED_NAMES for part in rel.parts) or path.suffix in _IGNORED_SUFFIXES:
            continue
        if path.is_file():
            files[rel.as_posix()] = path
    return files


def compare(expected_root: Path, actual_root: Path) -> list[tuple[str, str]]:
    """(status, path) for every difference: 'missing', 'stale' (should not exist) or 'differs'."""
    expected, actual = _tree(expected_root), _tree(actual_root)
    problems: list[tuple[str, str]] = []
    for rel in sorted(expected.keys() | actual.keys()):
        if rel not in actual:
            problems.append(("missing", rel))
        elif rel not in expected:
            problems.append(("stale", rel))
        elif not filecmp.cmp(expected[rel], actual[rel], shallow=False):
            problems.append(("differs", rel))
    return problems


def _show_diff(expected: Path, actual: Path, rel: str, limit: int = 40) -> None:
    try:
        new = expected.read_text(encoding="utf-8").splitlines(keepends=True)
        old = actual.read_text(encoding="utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        return
    diff = list(difflib.unified_diff(old, new, f"committed/{rel}", f"generated/{rel}"))
    sys.stderr.writelines(diff[:limit])
    if len(diff) > limit:
        sys.stderr.write(f"... ({len(diff) - limit} more diff lines)\n")


def sync(generated_root: Path, target_root: Path) -> list[tuple[str, str]]:
    """Make target_root identical to generated_root; returns what changed."""
    changes = compare(generated_root, target_root)
    for status, rel in changes:
        target = target_root / rel
        if status == "stale":
            target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(generated_root / rel, target)
    # Drop folders left empty by stale files (ignoring caches).
    for folder in sorted((p for p in target_root.rglob("*") if p.is_dir()), reverse=True):
        if folder.name in _IGNORED_NAMES:
            continue
        remaining = [c for c in folder.iterdir() if c.name not in _IGNORED_NAMES]
        if not remaining:
            shutil.rmtree(folder)
    return changes


def _display(path: Path) -> str:
    """path relative to the repository when it is inside it."""
    try:
        return path.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 listing every file that differs from a fresh generation",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=OUTPUT_ROOT,
        help="output root (default: libs/protos/src); the stubs go to <out>/loopml/",
    )
    args = parser.parse_args(argv)
    target = args.out.resolve() / NAMESPACE

    with tempfile.TemporaryDirectory(prefix="loopml-protos-") as tmp:
        tmp_dir = Path(tmp)
        generate(tmp_dir)
        generated = tmp_dir / NAMESPACE
        if args.check:
            problems = compare(generated, target)
            if not problems:
                print(f"gen_protos: {_display(target)} is up to date")
                return 0
            print(
                "gen_protos: generated stubs are out of date; run `make protos` "
                "(.venv/bin/python scripts/gen_protos.py):",
                file=sys.stderr,
            )
            for status, rel in problems:
                print(f"  {status:8} {_display(target / rel)}", file=sys.stderr)
            for status, rel in problems:
                if status == "differs":
                    _show_diff(generated / rel, target / rel, rel)
                    break
            return 1
        target.mkdir(parents=True, exist_ok=True)
        changes = sync(generated, target)
    for status, rel in changes:
        verb = {"missing": "wrote", "differs": "updated", "stale": "removed"}[status]
        print(f"gen_protos: {verb} {_display(target / rel)}")
    print(f"gen_protos: {len(changes)} file(s) changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
