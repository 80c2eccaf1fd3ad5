"""The service images: linted, pinned, non-root, multi-stage, each with only its own dependencies."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.deploy._repo import DEFAULT_PORTS, ROOT, SERVICES, dockerfile, dockerfile_instructions, image_env

HADOLINT = str(Path(sys.executable).with_name("hadolint"))
#: Local distributions: where their pyproject.toml lives.
LOCAL = {
    "loopml-protos": "libs/protos",
    "loopml-runtime": "libs/runtime",
    "loopml-modelkit": "libs/modelkit",
    "loopml-client": "client",
    **{f"loopml-{s}": f"services/{s}" for s in SERVICES},
}


def _installed_paths(service: str) -> list[str]:
    """The local package folders the image's `pip install` lines name."""
    paths = []
    for keyword, rest in dockerfile_instructions(service):
        if keyword == "RUN" and "pip install" in rest:
            paths += [p.removeprefix("./") for p in rest.split() if p.startswith("./")]
    return paths


def _requirements(service: str) -> set[str]:
    """Names of every third-party distribution the image's local packages require."""
    names = set()
    for path in _installed_paths(service):
        project = tomllib.loads((ROOT / path / "pyproject.toml").read_text())["project"]
        for requirement in project.get("dependencies", []):
            name = re.split(r"[\s=<>!\[;~]", requirement, maxsplit=1)[0].lower()
            if name not in LOCAL:
                names.add(name)
    return names


@pytest.mark.parametrize("service", SERVICES)
def test_hadolint_passes(service):
    result = subprocess.run(
        [HADOLINT, str(ROOT / "services" / service / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("service", SERVICES)
def test_image_is_multistage_pinned_and_non_root(service):
    instructions = dockerfile_instructions(service)
    bases = [rest for k, rest in instructions if k == "FROM"]
    assert len(bases) >= 2, "build stage + runtime stage"
    default_base = re.search(r"ARG PYTHON_IMAGE=(\S+)", dockerfile(service)).group(1)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", default_base)
    final = max(i for i, (k, _) in enumerate(instructions) if k == "FROM")
    users = [rest for k, rest in instructions[final:] if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert any(k == "COPY" and "--from=build" in rest for k, rest in instructions[final:])
    assert any(k == "HEALTHCHECK" and "loopml.runtime.healthcheck" in rest for k, rest in instructions)


@pytest.mark.parametrize("service", SERVICES)
def test_image_installs_its_own_service_only(service):
    installed = _installed_paths(service)
    assert f"services/{service}" in installed
    assert not [p for p in installed if p.startswith("services/") and p != f"services/{service}"]
    for shared in ("libs/protos", "libs/runtime", "libs/modelkit", "client"):
        assert shared in installed


def test_only_the_trainer_image_carries_the_training_stack():
    for service in SERVICES:
        requirements = _requirements(service)
        if service == "trainer":
            assert {"optuna", "torch"} <= requirements
        else:
            assert not requirements & {"optuna", "torch"}, f"{service} image pulls the training stack"


@pytest.mark.parametrize("service", SERVICES)
def test_image_listens_on_the_service_port_and_migrates_only_when_asked(service):
    env = image_env(service)
    port = DEFAULT_PORTS[service]
    assert env["LOOPML_LISTEN_ADDRESS"] == f"0.0.0.0:{port}"
    assert env["LOOPML_MIGRATE_ON_START"] == "false"
    exposed = [rest for k, rest in dockerfile_instructions(service) if k == "EXPOSE"]
    assert str(port) in " ".join(exposed).split()


def test_dockerignore_keeps_the_context_small():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".venv", "tests", "**/__pycache__", "**/.git"):
        assert entry in ignored


def test_services_without_the_training_stack_start_without_it(tmp_path):
    """Their images lack Optuna and torch: building their server must not import them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    runs = {}
    for service in [s for s in SERVICES if s != "trainer"]:
        code = (
            "import sys\n"
            "from loopml.runtime.migrate import settings_class\n"
            f"from loopml.services.{service}.server import make_server\n"
            f"settings = settings_class({service!r})(data_dir={str(tmp_path / service)!r}, "
            "listen_address='127.0.0.1:0')\n"
            "make_server(settings).stop(grace=0)\n"
            "print(sorted(m for m in ('optuna', 'torch') if m in sys.modules))\n"
        )
        runs[service] = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
    for service, process in runs.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, f"{service}: {err[-2000:]}"
        assert out.strip().splitlines()[-1] == "[]", f"{service} imports {out.strip()}"
