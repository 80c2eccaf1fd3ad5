"""A registry that is down when a search ends: the model is kept and registered once it is back."""

from __future__ import annotations

import socket
import time

from loopml.client.datasets import DatasetClient
from loopml.client.registry import RegistryClient
from loopml.client.trainer import TrainerClient, state_name
from loopml.services.dataset.server import make_server as make_dataset_server
from loopml.services.dataset.settings import DatasetSettings
from loopml.services.registry.server import make_server as make_registry_server
from loopml.services.registry.settings import RegistrySettings
from loopml.services.trainer.server import make_server as make_trainer_server
from loopml.services.trainer.settings import TrainerSettings
from tests.trainer.helpers import iris
from tests.trainer.test_api import upload


def _free_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def test_registration_waits_for_a_registry_that_comes_back(local_backend, serve):
    registry_address = _free_address()  # nothing listens there yet
    settings = {**local_backend.settings, "listen_address": "127.0.0.1:0"}
    dataset = serve("dataset", make_dataset_server, DatasetSettings(**settings))
    serve(
        "trainer",
        make_trainer_server,
        TrainerSettings(
            **settings,
            dataset_address=dataset.address,
            registry_address=registry_address,
        ),
    )
    config = serve.served.client_config()
    trainer = TrainerClient(config)
    dataset_id = upload(DatasetClient(config), iris(), "iris", "target")
    search = trainer.create_search(
        dataset_id,
        label="target",
        max_trials=2,
        seed=0,
        families=["linear"],
        ensemble=False,
        register_model_name="iris-model",
    )
    list(trainer.watch(search.search_id))
    done = trainer.get_search(search.search_id)
    assert state_name(done.state) == "SUCCEEDED"
    assert done.result.registration_pending and "unavailable" in done.result.registration_error
    assert done.result.artifact_sha256 and not done.result.HasField("registered_model")

    serve(
        "registry",
        make_registry_server,
        RegistrySettings(**local_backend.settings, listen_address=registry_address),
    )
    deadline = time.monotonic() + 60
    while trainer.get_search(search.search_id).result.registration_pending:
        assert time.monotonic() < deadline, "the registration was not retried"
        time.sleep(0.5)
    result = trainer.get_search(search.search_id).result
    assert result.registered_model.name == "iris-model" and result.registered_model.version == 1
    assert result.registration_error == ""
    registered = RegistryClient(serve.served.client_config()).get_version("iris-model", 1)
    assert registered.artifact.sha256 == result.artifact_sha256
    assert registered.lineage.search_id == search.search_id
