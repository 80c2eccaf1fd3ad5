"""Bad uploads: each is refused with a message naming the line, column or field, and leaves nothing
behind (no dataset or version in the database, no object in the store, no temporary file)."""

from __future__ import annotations

import io
import threading
import time

import grpc
import pytest

from loopml.client.errors import InvalidArgumentError, LoopmlClientError, ResourceExhaustedError
from loopml.dataset.v1 import dataset_service_pb2 as pb
from tests.dataset import data
from tests.dataset.conftest import start


class Unsized(io.RawIOBase):
    """A stream whose size the client cannot know (no fileno, no seek)."""

    def __init__(self, payload: bytes):
        self._inner = io.BytesIO(payload)

    def readable(self):
        return True

    def read(self, n=-1):
        return self._inner.read(n)


def assert_nothing_left(service) -> None:
    deadline = time.monotonic() + 20  # the server may still be cleaning up a cancelled call
    while True:
        datasets, versions, objects, temp = service.leftovers()
        if not temp or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert (datasets, versions, objects, temp) == (0, 0, [], [])


def refuse(
    service, payload: bytes, *, error=InvalidArgumentError, filename: str = "data.csv", **kwargs
) -> LoopmlClientError:
    with pytest.raises(error) as caught:
        service.client.upload(io.BytesIO(payload), name="bad", filename=filename, **kwargs)
    assert_nothing_left(service)
    assert caught.value.code != "INTERNAL"
    return caught.value


def test_empty_file(service):
    err = refuse(service, b"")
    assert err.field_violations[0].field == "file" and "empty" in err.message


def test_header_only(service):
    err = refuse(service, b"age,income,plan\n")
    assert "no data rows" in err.message and "line 2" in err.message


def test_ragged_rows(service):
    err = refuse(service, b"a,b\n1,2\n3,4\n5,6,7\n8,9\n")
    assert "line 4" in err.message and "Expected 2 columns, got 3" in err.message


def test_invalid_utf8(service):
    err = refuse(service, b"name,city\nann,Paris\nbob,Z\xfcrich\n")
    assert "invalid UTF-8" in err.message and "column 'city'" in err.message and "line 3" in err.message


def test_duplicate_column_names(service):
    err = refuse(service, b"a,b,a\n1,2,3\n")
    assert "'a' appears twice (columns 1 and 3)" in err.message


def test_empty_column_name(service):
    err = refuse(service, b"a,,c\n1,2,3\n")
    assert "column 2" in err.message and "empty name" in err.message


def test_over_the_size_limit(serve, backend, tmp_path):
    service = start(serve, backend, tmp_path, max_upload_bytes=1000)
    payload = data.csv_bytes()
    assert len(payload) > 1000
    err = refuse(service, payload, error=ResourceExhaustedError)  # refused from the header's size
    assert "1000 bytes" in err.message
    with pytest.raises(ResourceExhaustedError) as caught:  # refused while streaming: size unknown
        service.client.upload(Unsized(payload), name="bad", filename="data.csv")
    assert "1000 bytes" in caught.value.message
    assert_nothing_left(service)


def test_unsupported_format(service):
    err = refuse(service, b"PK\x03\x04" + b"\x00" * 200, filename="book.xlsx")
    assert err.field_violations[0].field == "header.format" and "ZIP/XLSX" in err.message


def test_mislabelled_format(service):
    err = refuse(service, data.csv_bytes(), filename="data.parquet", format="parquet")
    assert err.field_violations[0].field == "header.format" and "says parquet" in err.message


def test_truncated_gzip(service):
    whole = data.gz(data.csv_bytes(data.frame(rows=2000)))
    err = refuse(service, whole[: len(whole) // 2], filename="data.csv.gz")
    assert "gzip" in err.message


def test_unknown_label_column(service):
    err = refuse(service, data.csv_bytes(), label_column="target")
    assert err.field_violations[0].field == "header.label_column" and "'target'" in err.message


def test_header_must_come_first(service):
    with pytest.raises(InvalidArgumentError) as caught:
        service.client.call("UploadDataset", iter([pb.UploadDatasetRequest(chunk=b"a,b\n1,2\n")]))
    assert caught.value.field_violations[0].field == "header"
    assert_nothing_left(service)


def test_client_cancels_half_way(service):
    release = threading.Event()

    def requests():
        yield pb.UploadDatasetRequest(header=pb.UploadDatasetHeader(name="bad", filename="data.csv"))
        for _ in range(4):
            yield pb.UploadDatasetRequest(chunk=b"x" * 65536)
        release.wait(30)  # keep the stream open until the client cancels

    future = service.client.stub.UploadDataset.future(requests())
    deadline = time.monotonic() + 20
    while not any(service.spool_dir.glob("*/original")) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert any(service.spool_dir.glob("*/original")), "the server never started spooling"
    future.cancel()
    release.set()
    with pytest.raises(grpc.FutureCancelledError):
        future.result()
    assert_nothing_left(service)
