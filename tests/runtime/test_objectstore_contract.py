"""The ObjectStore contract, one suite run over every backend.

`local` is a folder under tmp_path; `s3` and `s3-prefixed` are buckets on a moto server reached
through the minio SDK. Each backend also says how to write bytes behind the store's back (to tamper
with an object or drop one in as a user would) and what internal debris it has.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from minio import Minio

from loopml.runtime.errors import DataLoss, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from loopml.runtime.objectstore import LocalObjectStore, ObjectStore, S3ObjectStore, open_object_store
from tests.fixtures.s3 import S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY, free_port

MiB = 1024 * 1024


@dataclass
class Backend:
    name: str
    store: ObjectStore
    #: write bytes directly, bypassing the store; keep_digest leaves the recorded sha256 as it was
    write_raw: Callable[[str, bytes, bool], None]
    #: every internal thing in the store's storage that is not a live object or its metadata
    debris: Callable[[], list[str]]
    #: every name in the underlying storage (objects, sidecars, temp files), for "nothing left" checks
    everything: Callable[[], list[str]]


def _local_backend(root) -> Backend:
    store = LocalObjectStore(root)

    def write_raw(key: str, data: bytes, keep_digest: bool) -> None:
        path = store.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)  # same inode, sidecar untouched: like bit rot when keep_digest

    def everything() -> list[str]:
        found = []
        for dirpath, _, files in os.walk(store.root):
            found += [os.path.relpath(os.path.join(dirpath, f), store.root) for f in files]
        return sorted(f for f in found if f != ".loopml/locks/commit")

    def debris() -> list[str]:
        return [f for f in everything() if f.startswith(".loopml/tmp/")]

    return Backend("local", store, write_raw, debris, everything)


def _s3_backend(endpoint: str, client: Minio, bucket: str, prefix: str) -> Backend:
    store = S3ObjectStore(
        endpoint,
        bucket,
        prefix=prefix,
        access_key=S3_ACCESS_KEY,
        secret_key=S3_SECRET_KEY,
        region=S3_REGION,
        part_size=5 * MiB,  # the S3 minimum, so 12 MiB objects take three parts
    )

    def write_raw(key: str, data: bytes, keep_digest: bool) -> None:
        name = store.prefix + key
        metadata = {}
        if keep_digest:
            metadata = {"sha256": client.stat_object(bucket, name).metadata["x-amz-meta-sha256"]}
        client.put_object(bucket, name, io.BytesIO(data), len(data), metadata=metadata)

    def everything() -> list[str]:
        if not client.bucket_exists(bucket):
            return []
        names = [o.object_name for o in client.list_objects(bucket, recursive=True)]
        # Private SDK call: there is no public one for pending multipart uploads.
        uploads = client._list_multipart_uploads(bucket).uploads
        return sorted(names + [f"(multipart upload) {u.object_name}" for u in uploads])

    def debris() -> list[str]:
        return [n for n in everything() if ".loopml/" in n or n.startswith("(multipart")]

    return Backend("s3", store, write_raw, debris, everything)


@pytest.fixture(params=["local", "s3", "s3-prefixed"])
def harness(request, tmp_path) -> Backend:
    if request.param == "local":
        return _local_backend(tmp_path / "store")
    endpoint = request.getfixturevalue("s3_endpoint")
    client = request.getfixturevalue("s3_client")
    bucket = request.getfixturevalue("s3_bucket")
    return _s3_backend(endpoint, client, bucket, "tenant/artifacts" if request.param == "s3-prefixed" else "")


@pytest.fixture
def store(harness: Backend) -> ObjectStore:
    return harness.store


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def chunked(data: bytes, size: int = MiB) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def failing_after(data: bytes, fail_at: int) -> Iterator[bytes]:
    for i, chunk in enumerate(chunked(data)):
        if i * MiB >= fail_at:
            raise RuntimeError("source broke")
        yield chunk


BIG = os.urandom(12 * MiB)


# -- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"hello loopml", os.urandom(300_000)], ids=["empty", "small", "300k"])
def test_round_trip(store: ObjectStore, data: bytes):
    info = store.put("runs/1/model.bin", data, content_type="application/x-test")

    assert (info.key, info.size, info.sha256) == ("runs/1/model.bin", len(data), sha(data))
    assert store.stat("runs/1/model.bin") == info
    assert store.read_bytes("runs/1/model.bin") == data
    assert b"".join(store.get("runs/1/model.bin", chunk_size=4096, expected_sha256=sha(data))) == data
    assert store.exists("runs/1/model.bin")


@pytest.mark.parametrize("with_expected", [False, True], ids=["computed", "expected"])
def test_large_object_is_streamed_in_parts_and_verified(store: ObjectStore, with_expected: bool):
    expected = sha(BIG) if with_expected else None
    info = store.put("datasets/big.parquet", chunked(BIG), expected_sha256=expected)

    assert (info.size, info.sha256) == (len(BIG), sha(BIG))
    chunks = list(store.get("datasets/big.parquet", chunk_size=MiB))
    assert max(len(c) for c in chunks) <= MiB
    assert b"".join(chunks) == BIG
    assert store.stat("datasets/big.parquet").sha256 == sha(BIG)


def test_put_accepts_a_binary_file(store: ObjectStore):
    info = store.put("from-file", io.BytesIO(BIG[: 3 * MiB]))
    assert info.sha256 == sha(BIG[: 3 * MiB])
    assert store.read_bytes("from-file") == BIG[: 3 * MiB]


def test_put_file_stores_a_local_file_under_its_known_digest(harness: Backend, tmp_path):
    store = harness.store
    source = tmp_path / "upload.csv"
    source.write_bytes(BIG[: 2 * MiB])
    info = store.put_file("datasets/x/original.csv", source, sha256=sha(BIG[: 2 * MiB]))
    source.unlink()  # the caller's scratch folder goes away; the object stays

    assert (info.key, info.size, info.sha256) == ("datasets/x/original.csv", 2 * MiB, sha(BIG[: 2 * MiB]))
    assert store.stat("datasets/x/original.csv") == info
    assert store.read_bytes("datasets/x/original.csv") == BIG[: 2 * MiB]
    assert harness.debris() == []


def test_put_replaces_an_existing_object(store: ObjectStore):
    store.put("k", b"first")
    info = store.put("k", b"second version")
    assert store.read_bytes("k") == b"second version"
    assert store.stat("k") == info
    assert [i.key for i in store.list()] == ["k"]


# -- atomic puts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"small", BIG], ids=["small", "multipart"])
def test_expected_sha256_mismatch_raises_data_loss_and_stores_nothing(harness: Backend, data: bytes):
    store = harness.store
    with pytest.raises(DataLoss):
        store.put("k", chunked(data), expected_sha256=sha(b"something else"))

    assert list(store.list()) == []
    assert not store.exists("k")
    assert harness.everything() == []


@pytest.mark.parametrize("with_expected", [False, True], ids=["computed", "expected"])
def test_a_put_whose_source_fails_leaves_no_object_and_no_debris(harness: Backend, with_expected: bool):
    store = harness.store
    expected = sha(BIG) if with_expected else None
    with pytest.raises(RuntimeError, match="source broke"):
        store.put("k", failing_after(BIG, 7 * MiB), expected_sha256=expected)

    assert list(store.list()) == []
    with pytest.raises(NotFound):
        store.stat("k")
    assert harness.everything() == []


def test_a_failed_put_keeps_the_previous_object(harness: Backend):
    store = harness.store
    before = store.put("k", b"old bytes")
    with pytest.raises(RuntimeError):
        store.put("k", failing_after(BIG, 6 * MiB))
    with pytest.raises(DataLoss):
        store.put("k", b"new bytes", expected_sha256=sha(b"other"))

    assert store.stat("k") == before
    assert store.read_bytes("k") == b"old bytes"
    assert harness.debris() == []


# -- verified reads ------------------------------------------------------------------------------


def test_missing_objects_are_not_found(store: ObjectStore):
    with pytest.raises(NotFound) as excinfo:
        store.get("no/such/key")  # raised by the call itself, before any iteration
    assert (excinfo.value.resource_type, excinfo.value.resource_name) == ("object", "no/such/key")
    with pytest.raises(NotFound):
        store.stat("no/such/key")
    with pytest.raises(NotFound):
        store.presigned_get_url("no/such/key")
    assert not store.exists("no/such/key")
    store.delete("no/such/key")  # idempotent


def test_a_corrupted_object_raises_data_loss_after_the_last_chunk(harness: Backend):
    store = harness.store
    store.put("k", BIG[: 2 * MiB])
    tampered = bytearray(BIG[: 2 * MiB])
    tampered[MiB] ^= 0xFF
    harness.write_raw("k", bytes(tampered), True)

    received = []
    with pytest.raises(DataLoss):
        for chunk in store.get("k", chunk_size=256 * 1024):
            received.append(chunk)
    assert b"".join(received) == tampered
    assert b"".join(store.get("k", verify=False)) == tampered


def test_a_truncated_object_raises_data_loss(harness: Backend):
    store = harness.store
    store.put("k", b"0123456789")
    harness.write_raw("k", b"01234", True)
    with pytest.raises(DataLoss):
        store.read_bytes("k")


def test_get_checks_the_callers_expected_sha256(store: ObjectStore):
    store.put("k", b"payload")
    with pytest.raises(DataLoss):
        b"".join(store.get("k", expected_sha256=sha(b"other"), verify=False))


# -- objects that landed without put -------------------------------------------------------------


def test_register_existing_records_the_digest_of_a_directly_written_object(harness: Backend):
    store = harness.store
    if isinstance(store, S3ObjectStore):
        store.put("unrelated", b"x")  # creates the bucket, as MinIO would have it already
    harness.write_raw("uploads/direct.csv", b"a,b\n1,2\n", False)
    assert store.stat("uploads/direct.csv").sha256 is None

    with pytest.raises(DataLoss):
        store.register_existing("uploads/direct.csv", expected_sha256=sha(b"other"))
    assert store.stat("uploads/direct.csv").sha256 is None

    info = store.register_existing("uploads/direct.csv", expected_sha256=sha(b"a,b\n1,2\n"))
    assert (info.size, info.sha256) == (8, sha(b"a,b\n1,2\n"))
    assert store.stat("uploads/direct.csv") == info
    assert store.register_existing("uploads/direct.csv") == info  # already recorded: no rehash

    harness.write_raw("uploads/direct.csv", b"a,b\n1,3\n", True)
    with pytest.raises(DataLoss):
        store.read_bytes("uploads/direct.csv")
    with pytest.raises(NotFound):
        store.register_existing("uploads/missing.csv")


# -- listing and deleting ------------------------------------------------------------------------


def test_list_and_delete_prefix(store: ObjectStore):
    keys = ["a/2", "a/1", "a/b/3", "ab", "b"]
    for key in keys:
        store.put(key, key.encode())

    assert [i.key for i in store.list()] == sorted(keys)
    assert [i.key for i in store.list("a/")] == ["a/1", "a/2", "a/b/3"]
    assert [i.key for i in store.list("a")] == ["a/1", "a/2", "a/b/3", "ab"]
    assert [i.key for i in store.list("zzz")] == []
    listed = {i.key: i for i in store.list()}
    assert listed["a/b/3"] == store.stat("a/b/3")

    assert store.delete_prefix("a/") == 3
    assert [i.key for i in store.list()] == ["ab", "b"]
    assert store.delete_prefix("nothing/") == 0
    with pytest.raises(InvalidArgument):
        store.delete_prefix("")

    store.delete("ab")
    store.delete("ab")
    assert [i.key for i in store.list()] == ["b"]


BAD_KEYS = [
    "",
    "/abs",
    "a//b",
    "a/",
    "a/../b",
    "./a",
    "a/.",
    "..",
    "a\\b",
    "a\x00b",
    "a\nb",
    ".loopml/tmp/x",
    "x" * 1025,
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_are_invalid_arguments(store: ObjectStore, key: str):
    calls = [
        lambda: store.put(key, b"x"),
        lambda: store.get(key),
        lambda: store.stat(key),
        lambda: store.delete(key),
        lambda: store.uri(key),
        lambda: store.register_existing(key),
    ]
    for call in calls:
        with pytest.raises(InvalidArgument) as excinfo:
            call()
        assert excinfo.value.field == "key"
    assert list(store.list()) == []


def test_bad_arguments_name_their_field(store: ObjectStore):
    with pytest.raises(InvalidArgument) as excinfo:
        store.put("k", b"x", expected_sha256="not-a-digest")
    assert excinfo.value.field == "expected_sha256"
    with pytest.raises(InvalidArgument) as excinfo:
        list(store.list("/abs"))
    assert excinfo.value.field == "prefix"


# -- addressing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["k", "runs/7/model file (1).bin", "données/ü?#%.csv"])
def test_uri_round_trip(store: ObjectStore, key: str):
    uri = store.uri(key)
    assert uri.startswith("s3://" if isinstance(store, S3ObjectStore) else "file:///")
    assert store.key_from_uri(uri) == key
    assert store.put(key, b"x").uri == uri


def test_uris_of_other_stores_are_rejected(store: ObjectStore, tmp_path):
    foreign = [
        "s3://another-bucket/k",
        "file:///somewhere/else/k",
        (tmp_path / "elsewhere" / "k").as_uri(),
        "https://example.com/k",
        "k",
        store.uri("a/b").replace("a/b", "a/../../b"),
    ]
    if isinstance(store, S3ObjectStore) and store.prefix:
        foreign.append(f"s3://{store.bucket}/k")  # the right bucket, outside the prefix
    for uri in foreign:
        with pytest.raises(InvalidArgument) as excinfo:
            store.key_from_uri(uri)
        assert excinfo.value.field == "uri", uri


def test_presigned_url_downloads_the_object(store: ObjectStore):
    store.put("models/m.bin", BIG[:100_000])
    url = store.presigned_get_url("models/m.bin")
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == BIG[:100_000]


# -- health and concurrency ----------------------------------------------------------------------


def test_check_passes_when_the_store_answers(store: ObjectStore):
    store.check()


def test_concurrent_puts_to_different_keys(store: ObjectStore):
    payloads = {f"concurrent/{i:02d}": os.urandom(64 * 1024 + i) for i in range(24)}
    with ThreadPoolExecutor(max_workers=8) as pool:
        infos = list(pool.map(lambda kv: store.put(kv[0], chunked(kv[1], 16 * 1024)), payloads.items()))

    assert {i.key: i.sha256 for i in infos} == {k: sha(v) for k, v in payloads.items()}
    assert [i.key for i in store.list("concurrent/")] == sorted(payloads)
    for key, data in payloads.items():
        assert store.read_bytes(key) == data


def test_readers_never_see_a_mix_while_a_key_is_overwritten(store: ObjectStore):
    versions = [bytes([n]) * (256 * 1024) for n in range(3)]
    store.put("hot", versions[0])
    stop = threading.Event()
    seen, errors = set(), []

    def read_loop():
        while not stop.is_set():
            try:
                seen.add(store.read_bytes("hot"))
            except Exception as exc:  # DataLoss would mean a torn or mismatched read
                errors.append(exc)

    readers = [threading.Thread(target=read_loop) for _ in range(3)]
    for thread in readers:
        thread.start()
    try:
        for i in range(30):
            store.put("hot", chunked(versions[i % 3], 64 * 1024))
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    assert errors == []
    assert seen <= set(versions)


# -- backend specifics ---------------------------------------------------------------------------


def test_s3_check_raises_unavailable_when_nothing_listens():
    store = S3ObjectStore(
        f"127.0.0.1:{free_port()}", "bucket", access_key="a", secret_key="b", backoff_s=0.01
    )
    with pytest.raises(Unavailable):
        store.check()
    with pytest.raises(Unavailable):
        store.stat("k")  # retried a few times, then Unavailable
    with pytest.raises(Unavailable):
        store.put("k", b"x")


def test_local_check_raises_unavailable_for_an_unusable_folder(tmp_path):
    (tmp_path / "a-file").write_bytes(b"")
    with pytest.raises(Unavailable):
        LocalObjectStore(tmp_path / "a-file").check()


def test_local_refuses_a_key_that_is_a_folder_of_another(tmp_path):
    store = LocalObjectStore(tmp_path)
    store.put("a/b", b"x")
    with pytest.raises(FailedPrecondition):
        store.put("a", b"y")
    store.put("c", b"z")
    with pytest.raises(FailedPrecondition):
        store.put("c/d", b"w")
    assert [i.key for i in store.list()] == ["a/b", "c"]


def test_local_delete_removes_empty_folders(tmp_path):
    store = LocalObjectStore(tmp_path)
    store.put("x/y/z", b"1")
    store.delete("x/y/z")
    assert sorted(os.listdir(tmp_path)) == [".loopml"]


# -- the factory ---------------------------------------------------------------------------------


def test_open_object_store_for_folders(tmp_path):
    for url in (tmp_path.as_uri(), str(tmp_path), f"file://localhost{tmp_path}"):
        store = open_object_store(url)
        assert isinstance(store, LocalObjectStore) and store.root == tmp_path


def test_open_object_store_for_s3(s3_endpoint: str, s3_bucket: str):
    store = open_object_store(
        f"s3://{s3_bucket}/team/a/",
        s3_endpoint=f"http://{s3_endpoint}",
        s3_access_key=S3_ACCESS_KEY,
        s3_secret_key=S3_SECRET_KEY,
    )
    assert isinstance(store, S3ObjectStore)
    assert (store.bucket, store.prefix) == (s3_bucket, "team/a/")
    store.check()
    assert store.put("k", b"v").uri == f"s3://{s3_bucket}/team/a/k"
    assert store.read_bytes("k") == b"v"


@pytest.mark.parametrize(
    ("url", "kwargs", "field"),
    [
        ("s3://bucket/p", {}, "s3_endpoint"),
        ("s3:///p", {"s3_endpoint": "h:1"}, "url"),
        ("s3://bucket/a/../b", {"s3_endpoint": "h:1"}, "url"),
        ("gs://bucket", {}, "url"),
        ("file://host/path", {}, "url"),
        ("", {}, "url"),
    ],
)
def test_open_object_store_rejects_bad_urls(url, kwargs, field):
    with pytest.raises(InvalidArgument) as excinfo:
        open_object_store(url, **kwargs)
    assert excinfo.value.field == field
