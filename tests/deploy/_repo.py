"""What the deployment tests read: the compose file (interpolated with .env.example), the
Dockerfiles, and the services' settings classes."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import yaml

from loopml.client.config import DEFAULT_PORTS, SERVICES
from loopml.runtime.migrate import settings_class

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"

_VARIABLE = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def compose_variables() -> set[str]:
    """Every ${VAR} the compose file interpolates."""
    return {m.group(1) for m in _VARIABLE.finditer(COMPOSE_FILE.read_text())}


def _interpolate(value, env: dict[str, str]):
    if isinstance(value, str):
        value = _VARIABLE.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)
        return value.replace("$$", "$")
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env) for v in value]
    return value


def compose(env: dict[str, str] | None = None) -> dict:
    """The compose file as docker compose sees it with `env` (default: .env.example) in deploy/.env."""
    raw = yaml.safe_load(COMPOSE_FILE.read_text())  # the safe loader resolves `<<:` merge keys
    return _interpolate(raw, env_example() if env is None else env)


def service_of_image(image: str) -> str | None:
    """`loopml/trainer:0.1.0` -> "trainer"; None for third-party images."""
    name = image.split(":", 1)[0]
    if name.startswith("loopml/") and name.split("/", 1)[1] in SERVICES:
        return name.split("/", 1)[1]
    return None


def loopml_services(spec: dict) -> dict[str, str]:
    """Compose service name -> loopml service it runs (API services and trainer workers)."""
    return {
        name: service_of_image(svc["image"])
        for name, svc in spec["services"].items()
        if service_of_image(svc.get("image", ""))
    }


def dockerfile(service: str) -> str:
    return (ROOT / "services" / service / "Dockerfile").read_text()


def dockerfile_instructions(service: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", dockerfile(service))
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def image_env(service: str) -> dict[str, str]:
    """The ENV of the service image's final stage."""
    instructions = dockerfile_instructions(service)
    last_from = max(i for i, (k, _) in enumerate(instructions) if k == "FROM")
    env = {}
    for keyword, rest in instructions[last_from:]:
        if keyword == "ENV":
            for part in shlex.split(rest):
                key, _, value = part.partition("=")
                env[key] = value
    return env


def image_entrypoint(service: str) -> list[str]:
    entry = [rest for k, rest in dockerfile_instructions(service) if k == "ENTRYPOINT"]
    return json.loads(entry[-1])


__all__ = [
    "DEFAULT_PORTS",
    "SERVICES",
    "settings_class",
]
