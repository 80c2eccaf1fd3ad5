"""Versions: uploads (bytes, path, iterator, existing object), numbering, checksums, deletes."""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from loopml.client.errors import (
    DataLossError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
)
from loopml.registry.v1 import model_pb2, registry_service_pb2_grpc
from loopml.registry.v1 import registry_service_pb2 as pb
from tests.registry.conftest import sha

READY = model_pb2.MODEL_VERSION_STATUS_READY


def test_upload_from_bytes_path_and_iterator_then_download_verified(registry, tmp_path):
    data = bytes(range(256)) * 5000  # 1.28 MB: several chunks
    v1 = registry.client.upload_version(
        "m",
        data,
        create_model_if_missing=True,
        flavor="sklearn_pipeline",
        metrics={"accuracy": 0.9},
        params={"max_depth": 3, "criterion": "gini"},
        tags={"k": "v"},
        description="first",
    )
    assert (v1.version, v1.status, v1.artifact.sha256, v1.artifact.size_bytes) == (
        1,
        READY,
        sha(data),
        len(data),
    )
    assert v1.created_by == "tester" and v1.flavor == model_pb2.MODEL_FLAVOR_SKLEARN_PIPELINE
    assert v1.params["max_depth"].int64_value == 3 and v1.metrics[0].value == 0.9
    path = tmp_path / "model.pkl"
    path.write_bytes(data[::-1])
    v2 = registry.client.upload_version("m", path)
    v3 = registry.client.upload_version("m", iter([b"abc", b"def"]))
    assert (v2.version, v3.version) == (2, 3) and v3.artifact.sha256 == sha(b"abcdef")
    assert registry.client.download("m", version=1) == data
    assert registry.client.download("m", version=2) == data[::-1]
    target = tmp_path / "out.bin"
    header = registry.client.download("m", latest=True, dest=target)
    assert header.version == 3 and target.read_bytes() == b"abcdef"
    assert registry.store.read_bytes(registry.store.key_from_uri(v1.artifact.uri)) == data
    listed = registry.client.list_versions("m")
    assert [v.version for v in listed] == [3, 2, 1]
    assert registry.client.get_version("m", 1).description == "first"


def test_twenty_concurrent_uploads_get_gap_free_numbers(registry):
    registry.client.create_model("busy")
    numbers, errors = [], []

    def upload(i: int) -> None:
        try:
            numbers.append(registry.client.upload_version("busy", f"artifact {i}".encode()).version)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(numbers) == list(range(1, 21))
    assert registry.client.get_model("busy").latest_version == 20
    assert set(registry.version_statuses("busy").values()) == {"READY"}


def test_numbers_are_never_reused_and_deleting_removes_the_object(registry):
    registry.client.upload_version("m", b"one", create_model_if_missing=True)
    v2 = registry.client.upload_version("m", b"two")
    registry.client.delete_version("m", 2)
    assert not registry.store.exists(registry.store.key_from_uri(v2.artifact.uri))
    with pytest.raises(NotFoundError) as error:
        registry.client.get_version("m", 2)
    assert error.value.resource_name == "m/versions/2"
    assert registry.client.upload_version("m", b"three").version == 3
    assert [v.version for v in registry.client.list_versions("m")] == [3, 1]


def test_checksum_mismatch_is_refused_and_leaves_nothing_ready_nor_stored(registry):
    registry.client.create_model("m")
    header = pb.CreateModelVersionHeader(model_name="m", sha256=sha(b"what I claim"))
    requests = [
        pb.CreateModelVersionRequest(header=header),
        pb.CreateModelVersionRequest(chunk=b"what I send"),
    ]
    with pytest.raises(InvalidArgumentError) as error:
        registry.client._call("CreateModelVersion", iter(requests))
    assert error.value.field_violations[0].field == "header.sha256"
    assert registry.version_statuses("m") == {1: "FAILED"}
    assert registry.model_objects() == []
    failed = registry.client.get_version("m", 1)
    assert failed.status == model_pb2.MODEL_VERSION_STATUS_FAILED and "checksum" in failed.status_message
    with pytest.raises(NotFoundError):
        registry.client.resolve("m", latest=True)


def test_missing_or_malformed_header_is_invalid_argument(registry):
    registry.client.create_model("m")
    with pytest.raises(InvalidArgumentError) as error:
        registry.client._call("CreateModelVersion", iter([pb.CreateModelVersionRequest(chunk=b"x")]))
    assert error.value.field_violations[0].field == "header"
    no_sha = pb.CreateModelVersionHeader(model_name="m")
    with pytest.raises(InvalidArgumentError) as error:
        registry.client._call("CreateModelVersion", iter([pb.CreateModelVersionRequest(header=no_sha)]))
    assert error.value.field_violations[0].field == "header.sha256"
    assert registry.version_statuses("m") == {} and registry.model_objects() == []


def test_cancelled_upload_leaves_a_failed_version_and_no_object(registry):
    registry.client.create_model("m")
    release = threading.Event()
    data = b"partial upload"

    def requests():
        yield pb.CreateModelVersionRequest(
            header=pb.CreateModelVersionHeader(model_name="m", sha256=sha(data * 2))
        )
        yield pb.CreateModelVersionRequest(chunk=data)
        release.wait(30)  # the second half never comes: the client cancels first

    channel = grpc.insecure_channel(registry.address)
    call = registry_service_pb2_grpc.RegistryServiceStub(channel).CreateModelVersion.future(requests())
    deadline = time.monotonic() + 30
    while registry.version_statuses("m") != {1: "PENDING"} and time.monotonic() < deadline:
        time.sleep(0.05)
    call.cancel()
    release.set()
    while registry.version_statuses("m") == {1: "PENDING"} and time.monotonic() < deadline:
        time.sleep(0.05)
    channel.close()
    assert registry.version_statuses("m") == {1: "FAILED"}
    assert registry.model_objects() == []


def test_reference_to_an_object_already_in_the_store(registry):
    data = b"written by the trainer"
    info = registry.store.put("models/external/trained.bin", data)
    version = registry.client.register_existing("ext", info.uri, sha(data), create_model_if_missing=True)
    assert (
        version.status == READY
        and version.artifact.uri == info.uri
        and version.artifact.size_bytes == len(data)
    )
    assert registry.client.download("ext", latest=True) == data
    with pytest.raises(InvalidArgumentError) as error:
        registry.client.register_existing("ext", info.uri, sha(b"something else"))
    assert error.value.field_violations[0].field == "header.sha256"
    with pytest.raises(NotFoundError):
        registry.client.register_existing("ext", registry.store.uri("models/external/missing.bin"), sha(data))
    assert registry.version_statuses("ext") == {1: "READY"}


def test_shared_object_is_deleted_only_when_no_version_references_it(registry):
    data = b"shared bytes"
    info = registry.store.put("models/shared/a.bin", data)
    registry.client.register_existing("s", info.uri, sha(data), create_model_if_missing=True)
    registry.client.register_existing("s", info.uri, sha(data))
    registry.client.delete_version("s", 1)
    assert registry.store.exists("models/shared/a.bin")
    registry.client.delete_version("s", 2)
    assert not registry.store.exists("models/shared/a.bin")


def test_unknown_version_is_not_found_naming_it(registry):
    registry.client.create_model("m")
    for call in (
        lambda: registry.client.get_version("m", 7),
        lambda: registry.client.delete_version("m", 7),
        lambda: registry.client.resolve("m", version=7),
        lambda: registry.client.download("m", version=7),
    ):
        with pytest.raises(NotFoundError) as error:
            call()
        assert error.value.resource_name == "m/versions/7"


def test_deleting_an_aliased_version_is_refused(registry):
    registry.client.upload_version("m", b"bytes", create_model_if_missing=True)
    registry.client.set_alias("m", "production", 1)
    with pytest.raises(FailedPreconditionError) as error:
        registry.client.delete_version("m", 1)
    assert "production" in error.value.message
    assert registry.version_statuses("m") == {1: "READY"} and len(registry.model_objects()) == 1


def test_download_refuses_bytes_that_do_not_match_the_record(registry):
    version = registry.client.upload_version("m", b"genuine model", create_model_if_missing=True)
    registry.store.put(registry.store.key_from_uri(version.artifact.uri), b"tampered model")
    with pytest.raises(DataLossError):
        registry.client.download("m", version=1)


def test_versions_filtered_by_lineage_across_models(registry):
    registry.client.upload_version(
        "a",
        b"a1",
        create_model_if_missing=True,
        lineage={
            "dataset_id": "ds-1",
            "dataset_version": 1,
            "search_id": "s-1",
            "trial_id": "t-3",
            "split_id": "sp-1",
        },
    )
    registry.client.upload_version(
        "b", b"b1", create_model_if_missing=True, lineage={"dataset_id": "ds-1", "dataset_version": 2}
    )
    registry.client.upload_version("b", b"b2", lineage={"dataset_id": "ds-2", "dataset_version": 1})
    on_ds1 = registry.client.list_versions(lineage_dataset_id="ds-1")
    assert sorted((v.model_name, v.version) for v in on_ds1) == [("a", 1), ("b", 1)]
    on_ds1_v1 = registry.client.list_versions(lineage_dataset_id="ds-1", lineage_dataset_version=1)
    assert [(v.model_name, v.version) for v in on_ds1_v1] == [("a", 1)]
    lineage = on_ds1_v1[0].lineage
    assert (
        lineage.dataset.dataset_id,
        lineage.dataset.version,
        lineage.search_id,
        lineage.trial_id,
        lineage.split_id,
    ) == ("ds-1", 1, "s-1", "t-3", "sp-1")
    assert registry.client.list_versions(lineage_dataset_id="ds-3") == []
    assert [v.model_name for v in registry.client.list_versions(lineage_search_id="s-1")] == ["a"]
    with pytest.raises(InvalidArgumentError) as error:
        registry.client.list_versions(lineage_dataset_version=1)
    assert error.value.field_violations[0].field == "lineage_dataset_version"


def test_a_retry_with_the_same_request_id_returns_the_same_version(registry):
    first = registry.client.upload_version("m", b"bytes", create_model_if_missing=True, request_id="job-42")
    again = registry.client.upload_version("m", b"bytes", request_id="job-42")
    assert again.version == first.version == 1
    assert registry.client.get_model("m").latest_version == 1 and len(registry.model_objects()) == 1
    from loopml.client.errors import AlreadyExistsError

    with pytest.raises(AlreadyExistsError):
        registry.client.upload_version("m", b"other bytes", request_id="job-42")


def test_an_artifact_over_the_size_limit_is_refused(backend, serve):
    from loopml.client.errors import ResourceExhaustedError
    from loopml.client.registry import RegistryClient
    from loopml.services.registry.server import make_server
    from loopml.services.registry.settings import RegistrySettings

    settings = RegistrySettings(**backend.settings, listen_address="127.0.0.1:0", max_artifact_bytes=1000)
    serve("registry", make_server, settings)
    client = RegistryClient(serve.served.client_config())
    client.create_model("m")
    with pytest.raises(ResourceExhaustedError):  # declared size over the limit: refused up front
        client.upload_version("m", b"x" * 1001)
    assert client.list_versions("m") == []
    header = pb.CreateModelVersionHeader(model_name="m", sha256=sha(b"x" * 1001))  # size not declared
    with pytest.raises(ResourceExhaustedError):
        client._call(
            "CreateModelVersion",
            iter(
                [pb.CreateModelVersionRequest(header=header), pb.CreateModelVersionRequest(chunk=b"x" * 1001)]
            ),
        )
    assert client.get_version("m", 1).status == model_pb2.MODEL_VERSION_STATUS_FAILED
    assert list(settings.open_object_store().list("models/")) == []
    client.close()


def test_versions_are_paged_newest_first(registry):
    for i in range(5):
        registry.client.upload_version("m", f"{i}".encode(), create_model_if_missing=True)
    first = registry.client._call(
        "ListModelVersions", pb.ListModelVersionsRequest(model_name="m", page_size=2)
    )
    second = registry.client._call(
        "ListModelVersions",
        pb.ListModelVersionsRequest(model_name="m", page_size=2, page_token=first.next_page_token),
    )
    assert [v.version for v in first.model_versions] == [5, 4] and [
        v.version for v in second.model_versions
    ] == [3, 2]
    ready_only = registry.client.list_versions("m", statuses=[READY])
    assert len(ready_only) == 5


def test_an_abandoned_upload_is_failed_and_its_late_bytes_are_not_kept(backend, serve):
    from loopml.client.registry import RegistryClient
    from loopml.services.registry.server import make_server
    from loopml.services.registry.settings import RegistrySettings

    settings = RegistrySettings(**backend.settings, listen_address="127.0.0.1:0", pending_timeout_s=0.4)
    server = serve("registry", make_server, settings)
    client = RegistryClient(serve.served.client_config())
    client.create_model("m")
    release = threading.Event()

    def requests():
        yield pb.CreateModelVersionRequest(
            header=pb.CreateModelVersionHeader(model_name="m", sha256=sha(b"ab"))
        )
        yield pb.CreateModelVersionRequest(chunk=b"a")
        release.wait(30)  # stalls past pending_timeout_s
        yield pb.CreateModelVersionRequest(chunk=b"b")

    channel = grpc.insecure_channel(server.address)
    call = registry_service_pb2_grpc.RegistryServiceStub(channel).CreateModelVersion.future(requests())
    deadline = time.monotonic() + 30
    while (client.list_versions("m") or [None])[0] is None or client.get_version(
        "m", 1
    ).status != model_pb2.MODEL_VERSION_STATUS_FAILED:
        assert time.monotonic() < deadline, "the sweeper did not fail the stalled upload"
        time.sleep(0.1)
    assert "abandoned" in client.get_version("m", 1).status_message
    release.set()
    with pytest.raises(grpc.RpcError) as error:
        call.result(timeout=30)
    assert error.value.code() == grpc.StatusCode.ABORTED
    channel.close()
    assert client.get_version("m", 1).status == model_pb2.MODEL_VERSION_STATUS_FAILED
    assert list(settings.open_object_store().list("models/")) == []
    client.close()


def test_an_interrupted_download_resumes_from_an_offset(registry):
    from loopml.client.registry import model_ref

    data = bytes(range(256)) * 8000  # 2 MB: crosses chunk boundaries
    registry.client.upload_version("m", data, create_model_if_missing=True)
    request = pb.DownloadModelArtifactRequest(model=model_ref("m", version=1), offset=1_500_000)
    responses = list(registry.client.stream("DownloadModelArtifact", request))
    header = responses[0].header
    assert (header.offset, header.size_bytes, header.sha256) == (1_500_000, len(data), sha(data))
    assert b"".join(r.chunk for r in responses[1:]) == data[1_500_000:]
    with pytest.raises(InvalidArgumentError) as error:
        list(
            registry.client.stream(
                "DownloadModelArtifact",
                pb.DownloadModelArtifactRequest(model=model_ref("m", version=1), offset=len(data) + 1),
            )
        )
    assert error.value.field_violations[0].field == "offset"
