"""deploy/k8s: the overlays render, every manifest is valid against the Kubernetes schemas, and
the manifests keep the promises of the deployment (probes, limits, hardening, wiring)."""

from __future__ import annotations

import kubernetes_validate
import pytest

from loopml.client.config import DEFAULT_PORTS, SERVICES
from tests.deploy._kustomize import render
from tests.deploy._repo import DEPLOY, settings_class

K8S = DEPLOY / "k8s"
KUBERNETES_VERSION = "1.31.0"
OVERLAYS = {name: render(K8S / "overlays" / name) for name in ("dev", "prod")}


def _find(docs, kind, name):
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def _pod(doc):
    return doc["spec"]["template"]["spec"]


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_every_manifest_is_valid(overlay):
    for doc in OVERLAYS[overlay]:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_each_service_is_a_deployment_and_service_with_grpc_probes(overlay):
    docs = OVERLAYS[overlay]
    for service in SERVICES:
        port = DEFAULT_PORTS[service]
        container = _pod(_find(docs, "Deployment", service))["containers"][0]
        assert container["args"] == ["serve"]
        if overlay == "dev":  # native gRPC probes (plaintext)
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert container[probe]["grpc"]["port"] == port
            assert container["livenessProbe"]["grpc"]["service"] == "liveness"  # not the dependencies
            assert container["readinessProbe"]["grpc"].get("service", "") == ""  # the dependencies
        else:  # mutual TLS: the image's health check as exec probe, no grpc probe left over
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert "grpc" not in container[probe]
                command = container[probe]["exec"]["command"]
                assert command[:3] == ["python", "-m", "loopml.runtime.healthcheck"]
                assert container[probe]["exec"]["command"][-2:] == ["--server-name", service]
            assert "liveness" in container["livenessProbe"]["exec"]["command"]
            assert "liveness" not in container["readinessProbe"]["exec"]["command"]
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert {"cpu", "memory"} <= set(container["resources"]["limits"])
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["LOOPML_LISTEN_ADDRESS"] == f"0.0.0.0:{port}"
        svc = _find(docs, "Service", service)
        assert [p["port"] for p in svc["spec"]["ports"] if p["name"] == "grpc"] == [port]
        _find(docs, "PodDisruptionBudget", service)
        _find(docs, "NetworkPolicy", f"{service}-ingress")
    worker = _find(docs, "Deployment", "trainer-worker")
    assert _pod(worker)["containers"][0]["args"] == ["worker"]
    assert _pod(worker)["containers"][0]["image"].split(":")[0] == "loopml/trainer"
    hpas = {d["spec"]["scaleTargetRef"]["name"] for d in docs if d["kind"] == "HorizontalPodAutoscaler"}
    assert hpas == {"inference", "trainer-worker"}


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_loopml_pods_are_hardened(overlay):
    for doc in OVERLAYS[overlay]:
        if doc["kind"] not in ("Deployment", "Job", "StatefulSet"):
            continue
        pod = _pod(doc)
        assert pod["securityContext"]["runAsNonRoot"] is True, doc["metadata"]["name"]
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            assert container["resources"]["limits"]


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_config_uses_the_settings_names(overlay):
    docs = OVERLAYS[overlay]
    names = set()
    for doc in docs:
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "loopml-config":
            names |= set(doc["data"])
        if doc["kind"] == "Secret" and doc["metadata"]["name"] == "loopml-secrets":
            names |= set(doc["stringData"])
    fields = set().union(*(settings_class(s).model_fields for s in SERVICES))
    unknown = [n for n in names if not n.startswith("LOOPML_") or n[7:].lower() not in fields]
    assert not unknown
    config = {
        n[7:].lower(): v
        for d in docs
        if d["kind"] in ("ConfigMap", "Secret")
        and d["metadata"]["name"] in ("loopml-config", "loopml-secrets")
        for n, v in d.get("data", d.get("stringData", {})).items()
        if not n.endswith("_FILE")  # mounted files, not on this machine
    }
    for service in SERVICES:
        settings_class(service)(**config)  # the values are ones the services accept


def test_the_migration_job_migrates_every_database_service_with_its_own_image():
    job = _find(OVERLAYS["prod"], "Job", "loopml-migrate")
    images = {c["image"].split(":")[0]: c["args"] for c in _pod(job)["containers"]}
    assert images == {f"loopml/{s}": ["migrate"] for s in ("dataset", "trainer", "registry", "metrics")}
    for doc in OVERLAYS["prod"]:
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "loopml-config":
            assert doc["data"]["LOOPML_MIGRATE_ON_START"] == "false"


def test_prod_runs_mutual_tls_from_the_mounted_secret():
    docs = OVERLAYS["prod"]
    config = _find(docs, "ConfigMap", "loopml-config")["data"]
    for service in [*SERVICES, "trainer-worker"]:
        pod = _pod(_find(docs, "Deployment", service))
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["tls"]["secret"]["secretName"] == "loopml-tls"
        mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        for name in ("LOOPML_TLS_CERT_FILE", "LOOPML_TLS_KEY_FILE", "LOOPML_TLS_CLIENT_CA_FILE",
                     "LOOPML_TLS_CA_FILE", "LOOPML_TLS_CLIENT_CERT_FILE", "LOOPML_TLS_CLIENT_KEY_FILE"):
            assert config[name].startswith(mounts["tls"] + "/")
    dev_config = _find(OVERLAYS["dev"], "ConfigMap", "loopml-config")["data"]
    assert not any(n.startswith("LOOPML_TLS") for n in dev_config)


def test_postgres_and_minio_are_included_in_dev_and_external_in_prod():
    dev, prod = OVERLAYS["dev"], OVERLAYS["prod"]
    _find(dev, "StatefulSet", "postgres")
    _find(dev, "Deployment", "minio")
    _find(dev, "Job", "minio-bucket")
    assert not [d for d in prod if d["metadata"]["name"] in ("postgres", "minio")]
    secret = _find(prod, "Secret", "loopml-secrets")["stringData"]
    assert "@postgres:" not in secret["LOOPML_DATABASE_URL"]
    config = _find(prod, "ConfigMap", "loopml-config")["data"]
    assert config["LOOPML_S3_SECURE"] == "true"
    assert all(d["metadata"]["namespace"] == "loopml" for d in prod if d["kind"] != "Namespace")


def test_network_policies_admit_only_the_architecture_calls():
    docs = OVERLAYS["prod"]
    _find(docs, "NetworkPolicy", "default-deny-ingress")

    def callers(service):
        policy = _find(docs, "NetworkPolicy", f"{service}-ingress")
        grpc_rule = policy["spec"]["ingress"][0]
        assert grpc_rule["ports"] == [{"protocol": "TCP", "port": DEFAULT_PORTS[service]}]
        return {p["podSelector"]["matchLabels"].get("app.kubernetes.io/component", "client")
                for p in grpc_rule["from"]}

    assert callers("inference") == {"client"}
    assert callers("registry") == {"client", "trainer", "trainer-worker", "inference", "metrics"}
    assert callers("dataset") == {"client", "trainer", "trainer-worker", "metrics"}
    assert callers("metrics") == {"client", "inference"}
    assert callers("trainer") == {"client", "metrics"}
