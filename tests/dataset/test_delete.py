"""DeleteDataset: versions and objects go, unless a registered model's lineage points at them."""

from __future__ import annotations

import io

import pytest

from loopml.client.config import ClientConfig
from loopml.client.errors import FailedPreconditionError, NotFoundError, UnavailableError
from loopml.services.dataset.registry_lineage import RegistryLineage
from tests.dataset import data
from tests.fixtures.s3 import free_port


def upload_two_versions(service) -> str:
    first = service.client.upload(io.BytesIO(data.csv_bytes()), name="d", filename="d.csv")
    service.client.upload(io.BytesIO(data.csv_bytes(data.frame(seed=3))), name="d", filename="d.csv")
    dataset_id = first.version.ref.dataset_id
    service.client.create_split(dataset_id, 1, train=0.8, test=0.2, strategy="random")
    return dataset_id


def test_delete_one_version_then_the_dataset(service):
    dataset_id = upload_two_versions(service)
    result = service.client.delete(dataset_id, 1)
    assert (
        list(result.deleted_versions) == [1] and result.deleted_object_count == 3
    )  # original, canonical, split
    assert [v.ref.version for v in service.client.versions(dataset_id)] == [2]
    with pytest.raises(NotFoundError):
        service.client.get(dataset_id, 1)
    result = service.client.delete(dataset_id)
    assert list(result.deleted_versions) == [2] and result.deleted_object_count == 2
    assert service.leftovers() == (0, 0, [], [])
    with pytest.raises(NotFoundError) as missing:
        service.client.delete(dataset_id)
    assert missing.value.resource_name == dataset_id


def test_delete_refused_while_a_model_uses_the_version(service):
    dataset_id = upload_two_versions(service)
    service.lineage.uses[(dataset_id, 2)] = ["churn-model@3"]
    with pytest.raises(FailedPreconditionError) as refused:
        service.client.delete(dataset_id, 2)
    assert "churn-model@3" in refused.value.message
    with pytest.raises(FailedPreconditionError):
        service.client.delete(dataset_id)  # the whole dataset includes version 2
    assert service.client.delete(dataset_id, 1).deleted_versions == [1]  # version 1 is free
    assert service.leftovers()[:2] == (1, 1)
    assert list(service.client.delete(dataset_id, 2, force=True).deleted_versions) == [2]
    assert service.leftovers() == (0, 0, [], [])


def test_registry_that_does_not_answer_blocks_unforced_deletes(serve, backend, tmp_path):
    from tests.dataset.conftest import start

    service = start(serve, backend, tmp_path)
    nowhere = ClientConfig(timeout_s=2).with_address("registry", f"127.0.0.1:{free_port()}")
    service.server.core.lineage = RegistryLineage(nowhere)
    dataset_id = upload_two_versions(service)
    with pytest.raises(UnavailableError) as unavailable:
        service.client.delete(dataset_id)
    assert "registry" in unavailable.value.message and "force" in unavailable.value.message
    assert service.leftovers()[:2] == (1, 2)
    assert sorted(service.client.delete(dataset_id, force=True).deleted_versions) == [1, 2]
    assert service.leftovers() == (0, 0, [], [])


def test_delete_asks_the_real_registry(serve, backend, tmp_path):
    from loopml.client.registry import RegistryClient
    from loopml.common.v1 import model_pb2, refs_pb2
    from loopml.services.registry.server import make_server as make_registry
    from loopml.services.registry.settings import RegistrySettings
    from tests.dataset.conftest import start

    registry = serve(
        "registry", make_registry, RegistrySettings(**backend.settings, listen_address="127.0.0.1:0")
    )
    lineage = RegistryLineage(ClientConfig(timeout_s=10).with_address("registry", registry.address))
    service = start(serve, backend, tmp_path, lineage=lineage)
    dataset_id = upload_two_versions(service)
    with RegistryClient(serve.served.client_config()) as models:
        trained_on = model_pb2.Lineage(dataset=refs_pb2.DatasetRef(dataset_id=dataset_id, version=2))
        models.upload_version("churn-model", b"model bytes", create_model_if_missing=True, lineage=trained_on)
    with pytest.raises(FailedPreconditionError) as refused:
        service.client.delete(dataset_id, 2)
    assert "churn-model@1" in refused.value.message
    with pytest.raises(FailedPreconditionError):
        service.client.delete(dataset_id)
    assert list(service.client.delete(dataset_id, 1).deleted_versions) == [1]
    assert list(service.client.delete(dataset_id, 2, force=True).deleted_versions) == [2]
    assert service.leftovers() == (0, 0, [], [])
    lineage.close()


def test_deleting_an_imported_dataset_keeps_the_users_object(service):
    payload = data.csv_bytes()
    theirs = service.store.put("incoming/customers.csv", payload)
    dataset_id = service.client.import_object(theirs.uri, name="imported").version.ref.dataset_id
    result = service.client.delete(dataset_id)
    assert list(result.deleted_versions) == [1] and result.deleted_object_count == 1  # the canonical copy
    assert service.leftovers() == (0, 0, [], [])
    assert service.store.read_bytes("incoming/customers.csv") == payload
    again = service.client.import_object(theirs.uri, name="imported")  # and it can be imported again
    assert again.created and again.version.original_uri == theirs.uri
