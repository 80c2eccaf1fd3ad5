"""Uploads large enough to be converted while they arrive (more than STREAM_START_BYTES): the
results, the errors and the clean-up must be those of a file converted after it arrived."""

from __future__ import annotations

import io
import threading
import time

import grpc
import pyarrow.parquet as pq
import pytest

from loopml.client.errors import InvalidArgumentError, ResourceExhaustedError
from loopml.dataset.v1 import dataset_pb2
from loopml.dataset.v1 import dataset_service_pb2 as pb
from loopml.services.dataset.core.ingest import STREAM_START_BYTES
from tests.dataset import data
from tests.dataset.conftest import start
from tests.dataset.test_bad_input import Unsized, assert_nothing_left


def big_csv(rows: int = 60_000) -> bytes:
    payload = data.csv_bytes(data.frame(rows=rows))
    assert len(payload) > 2 * STREAM_START_BYTES
    return payload


def canonical_table(service, dataset_id: str):
    out = io.BytesIO()
    service.client.download(dataset_id, destination=out, canonical=True)
    return pq.read_table(io.BytesIO(out.getvalue()))


@pytest.mark.parametrize(
    "filename, encode, rows",
    [
        ("big.csv", data.csv_bytes, 60_000),
        ("big.csv.gz", lambda df: data.gz(data.csv_bytes(df)), 200_000),
        ("big.jsonl", data.jsonl_bytes, 30_000),
    ],
)
def test_large_upload_has_every_row_and_exact_counts(service, filename, encode, rows):
    frame = data.frame(rows=rows)
    sent = encode(frame)
    assert len(sent) > 2 * STREAM_START_BYTES
    result = service.client.upload(io.BytesIO(sent), name="big", filename=filename, label_column="churn")
    v = result.version
    assert v.row_count == rows and v.size_bytes == len(sent)
    gzipped = filename.endswith(".gz")
    assert v.compression == (dataset_pb2.COMPRESSION_GZIP if gzipped else dataset_pb2.COMPRESSION_NONE)
    table = canonical_table(service, v.ref.dataset_id)
    assert table.column("customer_id").to_pylist() == frame["customer_id"].tolist()
    assert table.column("income").to_pylist() == frame["income"].tolist()
    profile = {c.name: c for c in service.client.profile(v.ref.dataset_id).columns}
    assert profile["plan"].count == rows and profile["plan"].distinct_count == 3
    churn = {tv.value.string_value: tv.count for tv in profile["churn"].top_values}
    assert churn == {"Yes": (rows + 2) // 3, "No": rows - (rows + 2) // 3}


def test_identical_large_upload_returns_the_existing_version(service):
    payload = big_csv()
    first = service.client.upload(io.BytesIO(payload), name="big", filename="big.csv")
    again = service.client.upload(io.BytesIO(payload), name="big", filename="big.csv")
    assert first.created and not again.created and again.version.ref == first.version.ref
    datasets, versions, objects, temp = service.leftovers()
    assert (datasets, versions, len(objects), temp) == (1, 1, 2, [])  # one original, one canonical


def test_late_value_that_does_not_fit_widens_the_column(service):
    payload = big_csv() + b"C99999,41.5,1.0,pro,2024-01-01,yes,No\n"  # age: integer -> real
    v = service.client.upload(io.BytesIO(payload), name="widened", filename="w.csv").version
    assert {c.name: c.physical_type for c in v.columns}["age"] == "double"
    assert v.row_count == 60_001
    assert canonical_table(service, v.ref.dataset_id).column("age").to_pylist()[-1] == 41.5


def test_late_ragged_row_is_named_by_its_line(service):
    payload = big_csv() + b"C99999,41,1.0,pro\n"
    with pytest.raises(InvalidArgumentError) as caught:
        service.client.upload(io.BytesIO(payload), name="bad", filename="bad.csv")
    assert "line 60002" in caught.value.message and "ragged row" in caught.value.message
    assert_nothing_left(service)


def test_size_limit_reached_while_converting(serve, backend, tmp_path):
    service = start(serve, backend, tmp_path, max_upload_bytes=3 * STREAM_START_BYTES)
    payload = big_csv(120_000)
    assert len(payload) > 3 * STREAM_START_BYTES
    with pytest.raises(ResourceExhaustedError):
        service.client.upload(Unsized(payload), name="bad", filename="big.csv")
    assert_nothing_left(service)
    service.client.close()


def test_client_cancels_while_its_upload_is_being_converted(service):
    payload = big_csv()
    release = threading.Event()

    def requests():
        yield pb.UploadDatasetRequest(header=pb.UploadDatasetHeader(name="bad", filename="data.csv"))
        for start_at in range(0, 2 * STREAM_START_BYTES, 65536):
            yield pb.UploadDatasetRequest(chunk=payload[start_at : start_at + 65536])
        release.wait(30)  # keep the stream open until the client cancels

    future = service.client.stub.UploadDataset.future(requests())
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        spooled = [p.stat().st_size for p in service.spool_dir.glob("*/original")]
        if spooled and spooled[0] >= 2 * STREAM_START_BYTES:
            break
        time.sleep(0.02)
    future.cancel()
    release.set()
    with pytest.raises(grpc.FutureCancelledError):
        future.result()
    assert_nothing_left(service)


def test_pieces_cut_at_line_ends_keep_every_row(serve, backend, tmp_path):
    """Small blocks make the upload arrive in many pieces: CRLF line ends, long lines (some cut by
    a piece's end) and a last line without its line end must come through unchanged."""
    service = start(serve, backend, tmp_path, read_block_bytes=65536)  # pieces of 256 KiB
    frame = data.frame(rows=60_000)
    frame.loc[::2000, "customer_id"] = "C" + "x" * 40_000
    payload = data.csv_bytes(frame).replace(b"\n", b"\r\n").removesuffix(b"\r\n")
    v = service.client.upload(io.BytesIO(payload), name="pieces", filename="p.csv").version
    assert v.row_count == 60_000
    table = canonical_table(service, v.ref.dataset_id)
    assert table.column("customer_id").to_pylist() == frame["customer_id"].tolist()
    assert table.column("income").to_pylist() == frame["income"].tolist()
    assert table.column("churn").to_pylist() == frame["churn"].tolist()
    service.client.close()


def test_value_that_does_not_fit_in_a_later_piece_widens_the_column(serve, backend, tmp_path):
    service = start(serve, backend, tmp_path, read_block_bytes=65536)
    frame = data.frame(rows=60_000)
    lines = data.csv_bytes(frame).split(b"\n")
    fields = lines[40_001].split(b",")
    fields[1] = b"41.5"  # age: integer -> real, far past the first piece
    lines[40_001] = b",".join(fields)
    v = service.client.upload(io.BytesIO(b"\n".join(lines)), name="widened", filename="w.csv").version
    assert {c.name: c.physical_type for c in v.columns}["age"] == "double"
    ages = canonical_table(service, v.ref.dataset_id).column("age").to_pylist()
    assert len(ages) == 60_000 and ages[40_000] == 41.5 and ages[0] == float(frame["age"][0])
    service.client.close()


def test_quoted_values_with_line_ends_are_never_cut(serve, backend, tmp_path):
    """Quoted values holding line ends, some of them long: every row and value
    must come through unchanged, wherever the upload is cut into pieces and blocks."""
    service = start(serve, backend, tmp_path, read_block_bytes=65536)  # pieces of 256 KiB
    frame = data.frame(rows=60_000)
    frame["note"] = [
        f"line one of {i}\nline two, with a comma\n" if i % 7 == 0 else f"n{i}" for i in range(60_000)
    ]
    frame.loc[::5000, "note"] = "\n".join(['a long quoted "paragraph"'] * 1_500)  # ~40 KB each
    payload = data.csv_bytes(frame)
    assert payload.count(b"\n") > 60_001 + 60_000 // 7  # line ends inside values
    assert_round_trip(service, frame, payload, name="multiline")


def test_rows_longer_than_a_piece_come_through_unchanged(serve, backend, tmp_path):
    """A few rows (one with quoted line ends) longer than several pieces: every value must come
    through unchanged, and the rows around them too."""
    service = start(serve, backend, tmp_path, read_block_bytes=65536)  # pieces of 256 KiB
    frame = data.frame(rows=60_000)
    frame["note"] = [f"n{i}" for i in range(60_000)]
    frame.loc[10_000, "note"] = "y" * 700_000
    frame.loc[30_000, "note"] = "\n".join(["a quoted line, with a comma"] * 30_000)  # ~840 KB
    assert_round_trip(service, frame, data.csv_bytes(frame), name="long-rows")


def assert_round_trip(service, frame, payload: bytes, name: str) -> None:
    """Upload `payload` (the CSV of `frame`); the canonical copy must hold every row and the
    `note` and `customer_id` values unchanged."""
    v = service.client.upload(io.BytesIO(payload), name=name, filename=f"{name}.csv").version
    assert v.row_count == len(frame)
    table = canonical_table(service, v.ref.dataset_id)
    assert table.column("note").to_pylist() == frame["note"].tolist()
    assert table.column("customer_id").to_pylist() == frame["customer_id"].tolist()
    service.client.close()
