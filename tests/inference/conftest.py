from __future__ import annotations

import pytest

from loopml.services.inference.core import ArtifactCache, InProcessModelSource, ModelManager
from tests.inference import models


@pytest.fixture(scope="session")
def bundles():
    """Models trained once per session: classifier v1, its label-flipped twin, a regressor, a broken one."""
    return {
        "classifier": models.classifier(),
        "flipped": models.classifier(flip=True),
        "regressor": models.regressor(),
        "broken": models.broken(),
    }


@pytest.fixture
def source(bundles) -> InProcessModelSource:
    source = InProcessModelSource()
    version = source.add_version("churn", bundles["classifier"])
    source.set_alias("churn", "production", version)
    source.add_version("spend", bundles["regressor"])
    source.set_alias("spend", "production", 1)
    return source


@pytest.fixture
def manager(source, tmp_path):
    manager = ModelManager(source, ArtifactCache(tmp_path / "cache"))
    yield manager
    manager.close()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def inference(serve, source, local_backend):
    """A real inference server on loopback, its models coming from the in-process `source`, its
    prediction log pointed at a metrics address where nothing listens (metrics down)."""
    from functools import partial

    from loopml.client.inference import InferenceClient
    from loopml.services.inference.server import InferenceDeps, make_server
    from loopml.services.inference.settings import InferenceSettings

    settings = InferenceSettings(
        **local_backend.settings,
        listen_address="127.0.0.1:0",
        metrics_address=f"127.0.0.1:{free_port()}",
        prometheus_address=f"127.0.0.1:{free_port()}",
        max_request_rows=1000,
        max_message_bytes=256 * 1024,
    )
    server = serve("inference", partial(make_server, deps=InferenceDeps(source=source)), settings)
    client = InferenceClient(serve.served.client_config())
    yield server, client
    client.close()
