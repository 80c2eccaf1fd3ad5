"""The five services with mutual TLS on: clients with a certificate from the CA get answers (SDK
config, raw channels, the health probe); clients without one, or with one from another CA, or
speaking plaintext, are refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from loopml.client.base import ServiceClient
from loopml.client.config import ClientConfig
from loopml.runtime.healthcheck import check
from loopml.runtime.migrate import settings_class
from loopml.services.dataset.server import make_server as make_dataset
from loopml.services.inference.server import make_server as make_inference
from loopml.services.metrics.server import make_server as make_metrics
from loopml.services.registry.server import make_server as make_registry
from loopml.services.trainer.server import make_server as make_trainer
from tests.deploy._certs import make_certs
from tests.deploy._rpcs import ANSWERED, call_read_rpc

LOOPML = str(Path(sys.executable).with_name("loopml"))
MAKERS = {
    "registry": make_registry,
    "dataset": make_dataset,
    "trainer": make_trainer,
    "metrics": make_metrics,
    "inference": make_inference,
}


class _Health(ServiceClient):
    def __init__(self, config: ClientConfig, service: str):
        self.service = service
        super().__init__(config)


@pytest.fixture
def mtls_suite(serve, local_backend, tmp_path):
    certs = make_certs(tmp_path / "certs")
    tls = dict(
        tls_cert_file=str(certs.server_cert), tls_key_file=str(certs.server_key),
        tls_client_ca_file=str(certs.ca), tls_ca_file=str(certs.ca),
        tls_client_cert_file=str(certs.client_cert), tls_client_key_file=str(certs.client_key),
    )
    addresses = {}
    for name, make in MAKERS.items():
        extra = {"check_lineage": False} if name == "dataset" else {}
        settings = settings_class(name)(
            **local_backend.settings, **tls, **extra, listen_address="127.0.0.1:0",
            **{f"{other}_address": address for other, address in addresses.items()},
        )
        addresses[name] = serve(name, make, settings).address
    return certs, addresses


def _tls_channel(address: str, certs, *, with_client_cert: bool) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=certs.ca.read_bytes(),
        private_key=certs.client_key.read_bytes() if with_client_cert else None,
        certificate_chain=certs.client_cert.read_bytes() if with_client_cert else None,
    )
    return grpc.secure_channel(address, credentials)


def test_mutual_tls_admits_only_clients_with_a_certificate(mtls_suite, tmp_path):
    certs, addresses = mtls_suite
    config = ClientConfig(
        addresses=addresses, tls_ca_file=str(certs.ca),
        tls_client_cert_file=str(certs.client_cert), tls_client_key_file=str(certs.client_key),
    )
    stranger = make_certs(tmp_path / "other", ca_name="someone else's CA")
    for name, address in addresses.items():
        with _Health(config, name) as client:  # the SDK with the certificate
            status = client.health(timeout=5)
        # SERVING everywhere: service-to-service probes (inference -> registry) speak mTLS too
        assert status == "SERVING", f"{name}: {status}"
        with _tls_channel(address, certs, with_client_cert=True) as channel:
            code, _ = call_read_rpc(channel, name, timeout=5)
            assert code in ANSWERED, f"{name}: {code}"
        with _tls_channel(address, certs, with_client_cert=False) as channel:
            assert call_read_rpc(channel, name, timeout=5)[0] == grpc.StatusCode.UNAVAILABLE
        with _tls_channel(address, stranger, with_client_cert=True) as channel:
            assert call_read_rpc(channel, name, timeout=5)[0] == grpc.StatusCode.UNAVAILABLE
        with grpc.insecure_channel(address) as channel:
            assert call_read_rpc(channel, name, timeout=5)[0] == grpc.StatusCode.UNAVAILABLE
        with _Health(ClientConfig(addresses=addresses, tls_ca_file=str(certs.ca)), name) as client:
            assert client.health(timeout=5) == "UNREACHABLE"  # the SDK without a certificate


def test_the_container_health_probe_speaks_mutual_tls(mtls_suite):
    certs, addresses = mtls_suite
    env = {
        "LOOPML_TLS_CERT_FILE": str(certs.server_cert), "LOOPML_TLS_CA_FILE": str(certs.ca),
        "LOOPML_TLS_CLIENT_CERT_FILE": str(certs.client_cert),
        "LOOPML_TLS_CLIENT_KEY_FILE": str(certs.client_key),
    }
    assert check(addresses["registry"], env=env) == "SERVING"
    assert check(addresses["registry"], env={}) == "UNREACHABLE"
    # The exec probe of the Kubernetes tls component, as the image runs it.
    probe = [sys.executable, "-m", "loopml.runtime.entrypoint", "registry", "healthcheck",
             "--address", addresses["registry"], "--server-name", "localhost"]
    base = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    result = subprocess.run(probe, env={**base, **env}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "SERVING" in result.stdout, result.stdout + result.stderr
    result = subprocess.run([*probe[:-2], "--server-name", "registry.elsewhere"], env={**base, **env},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "UNREACHABLE" in result.stdout  # the certificate names localhost


def test_service_settings_hand_their_tls_files_to_outgoing_calls(mtls_suite):
    certs, addresses = mtls_suite
    settings = settings_class("trainer")(
        listen_address="127.0.0.1:0", registry_address=addresses["registry"], tls_ca_file=str(certs.ca),
        tls_client_cert_file=str(certs.client_cert), tls_client_key_file=str(certs.client_key),
    )
    with _Health(settings.client_config(), "registry") as client:
        assert client.health(timeout=5) == "SERVING"
    without_certificate = settings.client_config(tls_client_cert_file="", tls_client_key_file="")
    with _Health(without_certificate, "registry") as client:
        assert client.health(timeout=5) == "UNREACHABLE"


def test_the_cli_reads_the_tls_variables(mtls_suite):
    certs, addresses = mtls_suite
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    env.update({f"LOOPML_{name.upper()}_ADDRESS": address for name, address in addresses.items()})
    env.update({
        "LOOPML_TLS_CA_FILE": str(certs.ca),
        "LOOPML_TLS_CLIENT_CERT_FILE": str(certs.client_cert),
        "LOOPML_TLS_CLIENT_KEY_FILE": str(certs.client_key),
    })
    result = subprocess.run(
        [LOOPML, "--json", "status"], env=env, capture_output=True, text=True, timeout=120
    )
    status = json.loads(result.stdout)
    assert status["registry"]["status"] == "SERVING" and status["dataset"]["status"] == "SERVING"
    del env["LOOPML_TLS_CLIENT_CERT_FILE"], env["LOOPML_TLS_CLIENT_KEY_FILE"]
    result = subprocess.run(
        [LOOPML, "--json", "status"], env=env, capture_output=True, text=True, timeout=120
    )
    assert {s["status"] for s in json.loads(result.stdout).values()} == {"UNREACHABLE"}
