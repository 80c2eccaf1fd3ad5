"""Shared helpers of the proto tests: paths, the project's tools, and descriptors compiled from source."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

REPO_ROOT = Path(__file__).resolve().parents[2]
PROTOS_DIR = REPO_ROOT / "protos"
OIP_DIR = PROTOS_DIR / "oip"
GENERATED_DIR = REPO_ROOT / "libs" / "protos" / "src"
GEN_SCRIPT = REPO_ROOT / "scripts" / "gen_protos.py"


def tool(name: str) -> Path:
    """A console script of the project's virtualenv (next to this interpreter), else from PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.is_file():
        return candidate
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found next to {sys.executable} nor on PATH")
    return Path(found)


def run(
    cmd: list[str | Path], cwd: Path = REPO_ROOT, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def well_known_types_dir() -> Path:
    import grpc_tools

    return Path(grpc_tools.__file__).resolve().parent / "_proto"


def compile_with_source_info(root: Path, files: list[str], out: Path) -> descriptor_pb2.FileDescriptorSet:
    """Compile .proto files (relative to root) into a FileDescriptorSet that keeps comments."""
    result = run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"--proto_path={root}",
            f"--proto_path={well_known_types_dir()}",
            "--include_source_info",
            "--include_imports",
            f"--descriptor_set_out={out}",
            *files,
        ]
    )
    assert result.returncode == 0, result.stderr
    fds = descriptor_pb2.FileDescriptorSet()
    fds.ParseFromString(out.read_bytes())
    return fds


def loopml_proto_files() -> list[str]:
    return sorted(p.relative_to(PROTOS_DIR).as_posix() for p in (PROTOS_DIR / "loopml").rglob("*.proto"))
