"""`buf lint` is clean, with STANDARD rules in full for loopml and only the spec-forced exceptions for OIP."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.protos._tools import PROTOS_DIR, run, tool

# The only STANDARD rules the Open Inference Protocol is allowed to break (see protos/buf.yaml).
OIP_SPEC_FORCED_EXCEPTIONS = {"PACKAGE_DIRECTORY_MATCH", "PACKAGE_VERSION_SUFFIX"}


def _rules(*args: str) -> set[str]:
    result = run([tool("buf"), "config", "ls-lint-rules", "--format", "json", *args], cwd=PROTOS_DIR)
    assert result.returncode == 0, result.stderr
    return {json.loads(line)["id"] for line in result.stdout.splitlines() if line.strip()}


def _standard_rules() -> set[str]:
    result = run([tool("buf"), "config", "ls-lint-rules", "--format", "json"], cwd=PROTOS_DIR)
    assert result.returncode == 0, result.stderr
    rules = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return {r["id"] for r in rules if "STANDARD" in r["categories"] and not r["deprecated"]}


def test_buf_lint_is_clean() -> None:
    result = run([tool("buf"), "lint"], cwd=PROTOS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_loopml_module_has_every_standard_rule() -> None:
    standard = _standard_rules()
    assert len(standard) > 30
    configured = _rules("--configured-only", "--module-path", ".")
    assert standard - configured == set(), "lint exceptions are not allowed in the loopml module"


def test_oip_module_disables_only_what_the_spec_forces() -> None:
    configured = _rules("--configured-only", "--module-path", "oip")
    assert _standard_rules() - configured == OIP_SPEC_FORCED_EXCEPTIONS


def test_lint_rejects_a_violation(tmp_path: Path) -> None:
    workspace = tmp_path / "protos"
    shutil.copytree(PROTOS_DIR, workspace)
    (workspace / "loopml" / "common" / "v1" / "bad.proto").write_text(
        'syntax = "proto3";\n'
        "package loopml.common.v1;\n"
        "enum Color { RED = 0; }\n"
        "message Paint { string colorName = 1; }\n"
    )
    result = run([tool("buf"), "lint", "--error-format", "json"], cwd=workspace)
    assert result.returncode != 0
    found = {json.loads(line)["type"] for line in result.stdout.splitlines() if line.strip()}
    assert {"ENUM_ZERO_VALUE_SUFFIX", "ENUM_VALUE_PREFIX", "FIELD_LOWER_SNAKE_CASE"} <= found
