"""Health tells the truth: without its registry the server is live but not ready, and says why."""

from __future__ import annotations

import pytest

from loopml.client.errors import LoopmlClientError
from loopml.client.inference import InferenceClient
from loopml.oip.v2 import open_inference_pb2 as oip
from loopml.services.inference.server import make_server
from loopml.services.inference.settings import InferenceSettings
from tests.inference import models
from tests.inference.conftest import free_port


def test_not_ready_while_the_registry_is_down(serve, local_backend):
    settings = InferenceSettings(
        **local_backend.settings,
        listen_address="127.0.0.1:0",
        registry_address=f"127.0.0.1:{free_port()}",
        prediction_log_enabled=False,
    )
    serve("inference", make_server, settings)
    with InferenceClient(serve.served.client_config()) as client:
        assert client.health() == "NOT_SERVING"
        assert client.oip.ServerLive(oip.ServerLiveRequest()).live
        assert not client.oip.ServerReady(oip.ServerReadyRequest()).ready
        with pytest.raises(LoopmlClientError) as error:
            client.predict("churn", models.rows())
        assert error.value.code == "UNAVAILABLE" and "registry" in error.value.message
