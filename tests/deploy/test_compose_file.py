"""deploy/docker-compose.yml, read as docker compose reads it, agrees with the code it runs."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import yaml

from tests.deploy._repo import (
    DEFAULT_PORTS,
    DEPLOY,
    SERVICES,
    compose,
    compose_variables,
    env_example,
    image_env,
    loopml_services,
    settings_class,
)

SPEC = compose()
RUNS = loopml_services(SPEC)  # compose service -> loopml service
API = {name: service for name, service in RUNS.items() if name == service}


def _env(name: str) -> dict[str, str]:
    return {k: str(v) for k, v in (SPEC["services"][name].get("environment") or {}).items()}


def test_the_five_services_and_scalable_workers_are_there():
    assert set(API) == set(SERVICES)
    assert RUNS["trainer-worker"] == "trainer"
    worker = SPEC["services"]["trainer-worker"]
    assert "ports" not in worker and "container_name" not in worker, "a scaled service cannot pin these"
    for name in ("postgres", "minio", "minio-init", "prometheus", "grafana"):
        assert name in SPEC["services"]


@pytest.mark.parametrize("name", sorted(RUNS))
def test_every_variable_is_a_setting_of_the_service_and_valid(name):
    cls = settings_class(RUNS[name])
    env = _env(name)
    fields = set(cls.model_fields)
    unknown = [k for k in env if k.startswith("LOOPML_") and k[len("LOOPML_"):].lower() not in fields]
    assert not unknown, f"{name}: not settings of {cls.__name__}: {unknown}"
    values = {k[len("LOOPML_"):].lower(): v for k, v in {**image_env(RUNS[name]), **env}.items()
              if k.startswith("LOOPML_")}
    cls(**values)  # raises on a value the service would refuse at start-up


@pytest.mark.parametrize("name", sorted(API))
def test_ports_agree(name):
    port = DEFAULT_PORTS[name]
    env = _env(name)
    assert env["LOOPML_LISTEN_ADDRESS"] == f"0.0.0.0:{port}"
    published = [str(p).rsplit(":", 1)[-1] for p in SPEC["services"][name]["ports"]]
    assert str(port) in published
    for other in RUNS:  # every caller names this service by its compose name and port
        assert _env(other)[f"LOOPML_{name.upper()}_ADDRESS"] == f"{name}:{port}"


@pytest.mark.parametrize("name", sorted(RUNS))
def test_dependencies_agree_with_the_wiring(name):
    services = SPEC["services"]
    env = _env(name)
    depends = services[name].get("depends_on") or {}
    depends = {d: {} for d in depends} if isinstance(depends, list) else depends
    assert set(depends) <= set(services)
    if name != "trainer-worker" and RUNS[name] != "inference":
        database = urlsplit(env["LOOPML_DATABASE_URL"])
        assert database.hostname in services and depends[database.hostname]["condition"] == "service_healthy"
        assert env["LOOPML_S3_ENDPOINT"].split(":")[0] == "minio"
        assert depends["minio-init"]["condition"] == "service_completed_successfully"
    if name == "inference":
        assert depends["registry"]["condition"] == "service_healthy"
    if name == "trainer-worker":
        assert depends["trainer"]["condition"] == "service_healthy"
        assert env["LOOPML_MIGRATE_ON_START"] == "false", "workers never migrate (the API does)"


def test_minio_init_creates_the_bucket_the_services_use():
    bucket = urlsplit(_env("dataset")["LOOPML_OBJECT_STORE_URL"]).netloc
    init = SPEC["services"]["minio-init"]
    script = " ".join(init["command"])
    assert "mc mb" in script and "$MINIO_BUCKET" in script
    assert init["environment"]["MINIO_BUCKET"] == bucket
    assert init["depends_on"]["minio"]["condition"] == "service_healthy"


def test_health_checks_restarts_and_named_volumes():
    services = SPEC["services"]
    for name in API:
        assert services[name]["healthcheck"]["test"][-1] == "loopml.runtime.healthcheck"
    for name, service in services.items():
        if name != "minio-init":
            assert service["restart"] == "unless-stopped", name
    declared = set(SPEC["volumes"])
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in declared
    assert {"pgdata", "miniodata"} <= declared


def test_the_env_example_names_every_variable_and_the_tokens_parse():
    example = env_example()
    assert compose_variables() - {"LOOPML_VERSION"} <= set(example)
    roles = settings_class("dataset")(auth_tokens=example["LOOPML_AUTH_TOKENS"]).token_roles()
    assert set(roles.values()) == {"read", "predict", "admin"}
    assert roles[example["LOOPML_CLIENT_TOKEN"]] == "admin"


def test_prometheus_scrapes_every_service_where_it_serves_metrics():
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    groups = [group for job in scrape["scrape_configs"] for group in job["static_configs"]]
    targets = {target for group in groups for target in group["targets"]}
    for name in API:
        port = _env(name)["LOOPML_PROMETHEUS_ADDRESS"].rsplit(":", 1)[1]
        assert f"{name}:{port}" in targets
    mounts = SPEC["services"]["prometheus"]["volumes"] + SPEC["services"]["grafana"]["volumes"]
    for source in (m.split(":", 1)[0] for m in mounts if m.startswith("./")):
        assert (DEPLOY / source).is_dir(), source
