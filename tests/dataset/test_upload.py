"""UploadDataset and ImportDataset: formats, versions, identical bytes, schema and task inference."""

from __future__ import annotations

import hashlib
import io

import pyarrow.parquet as pq
import pytest

from loopml.client.errors import InvalidArgumentError
from loopml.common.v1 import schema_pb2
from loopml.dataset.v1 import dataset_pb2
from tests.dataset import data

T = schema_pb2.ColumnType
R = schema_pb2.ColumnRole


@pytest.mark.parametrize(
    "filename, payload, fmt",
    [
        ("customers.csv", data.csv_bytes(), dataset_pb2.DATA_FORMAT_CSV),
        ("customers.tsv", data.csv_bytes(sep="\t"), dataset_pb2.DATA_FORMAT_TSV),
        ("customers.parquet", data.parquet_bytes(), dataset_pb2.DATA_FORMAT_PARQUET),
        ("customers.jsonl", data.jsonl_bytes(), dataset_pb2.DATA_FORMAT_JSONL),
        ("customers.csv.gz", data.gz(data.csv_bytes()), dataset_pb2.DATA_FORMAT_CSV),
        ("", data.gz(data.jsonl_bytes()), dataset_pb2.DATA_FORMAT_JSONL),  # detected from the bytes
    ],
)
def test_upload_each_format_stores_original_and_canonical(service, filename, payload, fmt):
    result = service.client.upload(
        io.BytesIO(payload), name="customers", filename=filename, label_column="churn"
    )
    v = result.version
    assert result.created and v.ref.version == 1 and v.format == fmt
    assert v.row_count == 60 and [c.name for c in v.columns][:3] == ["customer_id", "age", "income"]
    assert v.sha256 == hashlib.sha256(payload).hexdigest() and v.size_bytes == len(payload)
    # the original bytes come back unchanged, the canonical copy is Parquet with every row
    original = io.BytesIO()
    service.client.download(v.ref.dataset_id, destination=original)
    assert original.getvalue() == payload
    canonical = io.BytesIO()
    header = service.client.download(v.ref.dataset_id, destination=canonical, canonical=True)
    assert header.format == dataset_pb2.DATA_FORMAT_PARQUET
    table = pq.read_table(io.BytesIO(canonical.getvalue()))
    assert table.num_rows == 60 and table.column("churn").to_pylist()[:3] == ["Yes", "No", "No"]


def test_schema_roles_and_task_are_inferred(service):
    v = service.client.upload(
        io.BytesIO(data.csv_bytes()), name="customers", filename="c.csv", label_column="churn"
    ).version
    by_name = {c.name: c for c in v.columns}
    assert (
        by_name["customer_id"].type == T.COLUMN_TYPE_IDENTIFIER
        and by_name["customer_id"].role == R.COLUMN_ROLE_ID
    )
    assert by_name["age"].type == T.COLUMN_TYPE_INTEGER and by_name["age"].role == R.COLUMN_ROLE_FEATURE
    assert by_name["income"].type == T.COLUMN_TYPE_NUMERIC
    assert (
        by_name["plan"].type == T.COLUMN_TYPE_CATEGORICAL and "3 distinct" in by_name["plan"].inference_reason
    )
    assert by_name["signup"].type == T.COLUMN_TYPE_DATETIME
    assert by_name["active"].type == T.COLUMN_TYPE_BOOLEAN
    assert by_name["churn"].role == R.COLUMN_ROLE_LABEL
    task = v.task_inference
    assert task.task == schema_pb2.TASK_TYPE_BINARY and "2 distinct" in task.reason
    assert [c.string_value for c in task.class_labels] == ["No", "Yes"]


def test_same_name_new_version_and_identical_bytes_reuse(service):
    first = service.client.upload(io.BytesIO(data.csv_bytes()), name="customers", filename="c.csv")
    again = service.client.upload(io.BytesIO(data.csv_bytes()), name="customers", filename="c.csv")
    changed = service.client.upload(
        io.BytesIO(data.csv_bytes(data.frame(seed=1))), name="customers", filename="c.csv"
    )
    assert first.created and not again.created and changed.created
    assert again.version.ref == first.version.ref
    assert changed.version.ref.dataset_id == first.version.ref.dataset_id and changed.version.ref.version == 2
    got = service.client.get("customers")
    assert got.dataset.latest_version == 2 and got.dataset.version_count == 2 and got.version.ref.version == 2
    assert service.client.get(first.version.ref.dataset_id, 1).version.sha256 == first.version.sha256
    # the duplicate upload left no extra objects: two versions, two objects each
    assert len(service.leftovers()[2]) == 4


def test_created_by_is_the_callers_name(service, serve):
    from loopml.client.datasets import DatasetClient

    with DatasetClient(serve.served.client_config(), actor="ann") as ann:
        uploaded = ann.upload(io.BytesIO(data.csv_bytes()), name="hers", filename="c.csv")
        info = service.store.put("incoming/c.csv", data.csv_bytes(data.frame(seed=5)))
        imported = ann.import_object(info.uri, name="imported")
    assert uploaded.dataset.created_by == "ann" and uploaded.version.created_by == "ann"
    assert imported.version.created_by == "ann"
    got = service.client.get("hers")
    assert got.dataset.created_by == "ann" and got.version.created_by == "ann"


def test_progress_callback_and_upload_from_path(service, tmp_path):
    path = tmp_path / "c.csv"
    path.write_bytes(data.csv_bytes())
    seen = []
    result = service.client.upload(
        path, name="from-path", chunk_size=1000, progress=lambda sent, total: seen.append((sent, total))
    )
    assert result.version.filename == "c.csv"
    assert seen[-1] == (path.stat().st_size, path.stat().st_size) and len(seen) == -(
        -path.stat().st_size // 1000
    )


def test_import_registers_an_object_already_in_the_store(service):
    payload = data.csv_bytes()
    info = service.store.put("incoming/customers.csv", payload)
    result = service.client.import_object(info.uri, name="imported", label_column="churn")
    v = result.version
    assert result.created and v.source == dataset_pb2.DATASET_SOURCE_IMPORT and v.original_uri == info.uri
    assert v.row_count == 60 and v.sha256 == hashlib.sha256(payload).hexdigest()
    assert not service.client.import_object(info.uri, name="imported").created
    with pytest.raises(InvalidArgumentError) as bad:
        service.client.import_object("s3://some-other-bucket/x.csv", name="elsewhere")
    assert bad.value.field_violations[0].field == "uri"


def test_column_types_widen_when_a_later_block_does_not_fit(serve, backend, tmp_path):
    from tests.dataset.conftest import start

    service = start(serve, backend, tmp_path, read_block_bytes=4096)  # many small blocks
    lines = ["n,x,flag"] + [f"{i},{i},true" for i in range(2000)]
    lines += ["2000,2.5,false", "2001,seven,maybe"]  # x: int -> real -> string; flag: bool -> string
    payload = ("\n".join(lines) + "\n").encode()
    v = service.client.upload(io.BytesIO(payload), name="widened", filename="w.csv").version
    physical = {c.name: c.physical_type for c in v.columns}
    assert physical == {"n": "int64", "x": "string", "flag": "string"} and v.row_count == 2002
    canonical = io.BytesIO()
    service.client.download(v.ref.dataset_id, destination=canonical, canonical=True)
    table = pq.read_table(io.BytesIO(canonical.getvalue()))
    assert table.column("x").to_pylist()[-3:] == ["1999", "2.5", "seven"]


def test_headerless_csv_gets_c0_names_and_empty_column_is_nullable(service):
    from loopml.dataset.v1 import dataset_service_pb2 as pb

    payload = b"1,,x\n2,,y\n3,,z\n"
    header = pb.UploadDatasetHeader(
        name="headerless", filename="h.csv", csv_options=dataset_pb2.CsvOptions(no_header=True)
    )
    messages = iter([pb.UploadDatasetRequest(header=header), pb.UploadDatasetRequest(chunk=payload)])
    v = service.client.call("UploadDataset", messages).version
    assert [c.name for c in v.columns] == ["c0", "c1", "c2"] and v.row_count == 3
    empty = v.columns[1]
    assert empty.nullable and empty.role == R.COLUMN_ROLE_IGNORED


def test_nested_json_is_refused_naming_the_column(service):
    with pytest.raises(InvalidArgumentError) as bad:
        service.client.upload(io.BytesIO(b'{"a": 1, "b": {"c": 2}}\n'), name="nested", filename="n.jsonl")
    assert "column 'b'" in bad.value.message and "struct" in bad.value.message
    assert service.leftovers() == (0, 0, [], [])
