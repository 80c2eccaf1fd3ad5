"""docs/operations.md lists every setting of every service, as the settings classes define it."""

from __future__ import annotations

import re
import subprocess
import sys

from loopml.client.config import SERVICES
from loopml.runtime.migrate import settings_class
from tests.deploy._repo import ROOT

GENERATOR = ROOT / "deploy" / "tools" / "config_reference.py"
DOC = ROOT / "docs" / "operations.md"


def test_the_configuration_reference_is_up_to_date():
    result = subprocess.run([sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_every_setting_of_every_service_is_documented_with_its_default():
    text = DOC.read_text()
    documented = set(re.findall(r"^\| `LOOPML_(\w+)` \| ([^|]+) \|", text, flags=re.M))
    names = {name for name, _ in documented}
    for service in SERVICES:
        for field in settings_class(service).model_fields:
            assert field.upper() in names, f"LOOPML_{field.upper()} ({service}) is not documented"


def test_every_variable_the_deployment_sets_is_documented():
    text = DOC.read_text()
    deployment = (ROOT / "deploy" / "docker-compose.yml").read_text() + "".join(
        p.read_text() for p in (ROOT / "deploy" / "k8s").rglob("*.yaml")
    )
    for name in set(re.findall(r"\bLOOPML_[A-Z0-9_]*[A-Z0-9](?![A-Z0-9_])", deployment)) - {"LOOPML_VERSION"}:
        assert f"`{name}`" in text, name
