"""Profile, preview, column roles, splits, download of split parts, listing."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from loopml.client.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError
from loopml.common.v1 import schema_pb2
from loopml.dataset.v1 import dataset_pb2
from tests.dataset import data

W = dataset_pb2.DatasetWarningKind


def leaky_frame(rows: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    churn = np.where(rng.random(rows) < 0.3, "Yes", "No")
    frame = pd.DataFrame(
        {
            "row_id": np.arange(rows),
            "tenure": rng.integers(0, 72, rows),
            "charges": np.round(rng.uniform(10, 120, rows), 2),
            "region": rng.choice(["north", "south", "east", "west"], rows),
            "refund_flag": np.where(churn == "Yes", "refunded", "none"),  # a leak: it is the label
            "country": "FR",  # constant
            "churn": churn,
            "fraud": np.where(np.arange(rows) < 4, 1, 0),  # a very rare class
            "day": pd.date_range("2025-01-01", periods=rows, freq="h").strftime("%Y-%m-%dT%H:%M:%S"),
        }
    )
    return pd.concat([frame, frame.iloc[:5]], ignore_index=True)  # five duplicated rows


@pytest.fixture
def uploaded(service):
    result = service.client.upload(
        io.BytesIO(data.csv_bytes(leaky_frame())), name="leaky", filename="l.csv", label_column="churn"
    )
    return service, result.version.ref.dataset_id


def test_profile_statistics_and_warnings(uploaded):
    service, dataset_id = uploaded
    p = service.client.profile(dataset_id)
    frame = leaky_frame()
    assert p.row_count == 205 and p.column_count == 9 and p.duplicate_row_count == 5
    col = {c.name: c for c in p.columns}
    charges = col["charges"]
    assert charges.count == 205 and charges.missing_count == 0
    assert charges.mean == pytest.approx(frame["charges"].mean()) and charges.std == pytest.approx(
        frame["charges"].std(ddof=0)
    )
    assert (
        charges.min.double_value == frame["charges"].min()
        and charges.max.double_value == frame["charges"].max()
    )
    assert [q.quantile for q in charges.quantiles][4] == 0.5
    assert charges.quantiles[4].value == pytest.approx(frame["charges"].median())
    assert (
        sum(charges.histogram.counts) == 205
        and len(charges.histogram.bin_edges) == len(charges.histogram.counts) + 1
    )
    assert col["region"].distinct_count == 4 and not col["region"].distinct_count_approximate
    top = col["region"].top_values[0]
    assert (
        top.count == frame["region"].value_counts().iloc[0]
        and top.value.string_value == frame["region"].value_counts().index[0]
    )
    assert col["day"].type == schema_pb2.COLUMN_TYPE_DATETIME and col["day"].min.HasField("timestamp_value")
    kinds = {(w.kind, w.column) for w in p.warnings}
    assert (W.DATASET_WARNING_KIND_CONSTANT_COLUMN, "country") in kinds
    assert (W.DATASET_WARNING_KIND_LABEL_LEAK, "refund_flag") in kinds
    assert (W.DATASET_WARNING_KIND_DUPLICATE_ROWS, "") in kinds
    assert not any(k == W.DATASET_WARNING_KIND_LABEL_LEAK and c in ("region", "tenure") for k, c in kinds)


def test_changing_the_label_reinfers_task_and_warnings(uploaded):
    service, dataset_id = uploaded
    v = service.client.set_roles(dataset_id, label="fraud", roles={"row_id": "ignored", "day": "time"})
    roles = {c.name: c.role for c in v.columns}
    assert roles["fraud"] == schema_pb2.COLUMN_ROLE_LABEL and roles["churn"] == schema_pb2.COLUMN_ROLE_FEATURE
    assert roles["day"] == schema_pb2.COLUMN_ROLE_TIME and roles["row_id"] == schema_pb2.COLUMN_ROLE_IGNORED
    assert v.task_inference.label_column == "fraud" and v.task_inference.task == schema_pb2.TASK_TYPE_BINARY
    p = service.client.profile(dataset_id)
    assert any(w.kind == W.DATASET_WARNING_KIND_CLASS_IMBALANCE and w.column == "fraud" for w in p.warnings)
    v = service.client.set_roles(dataset_id, label="tenure")
    assert v.task_inference.task == schema_pb2.TASK_TYPE_REGRESSION
    assert "distinct integer values → regression" in v.task_inference.reason
    v = service.client.set_roles(dataset_id, types={"tenure": "categorical"})
    assert v.task_inference.task == schema_pb2.TASK_TYPE_MULTICLASS
    tenure = next(c for c in v.columns if c.name == "tenure")
    assert (
        tenure.type == schema_pb2.COLUMN_TYPE_CATEGORICAL
        and tenure.inferred_type == schema_pb2.COLUMN_TYPE_INTEGER
    )
    v = service.client.set_roles(dataset_id, reset=["tenure"])
    assert next(c for c in v.columns if c.name == "tenure").type == schema_pb2.COLUMN_TYPE_INTEGER
    with pytest.raises(InvalidArgumentError) as bad:
        service.client.set_roles(dataset_id, label="nope")
    assert bad.value.field_violations[0].field == "updates[0].column" and "'nope'" in bad.value.message
    with pytest.raises(InvalidArgumentError) as bad:
        service.client.set_roles(dataset_id, types={"region": "numeric"})
    assert "region" in bad.value.message


def test_preview_head_sample_and_columns(uploaded):
    service, dataset_id = uploaded
    frame = leaky_frame()
    head = service.client.preview(dataset_id, rows=5)
    assert head.total_rows == 205 and head.rows.row_count == 5
    cols = {c.name: c for c in head.rows.columns}
    assert list(cols["tenure"].int64_values.values) == frame["tenure"].iloc[:5].tolist()
    assert list(cols["charges"].double_values.values) == frame["charges"].iloc[:5].tolist()
    assert cols["day"].WhichOneof("values") == "timestamp_values"
    nxt = service.client.preview(dataset_id, rows=5, page_token=head.next_page_token)
    assert list(nxt.rows.columns[0].int64_values.values) == frame["row_id"].iloc[5:10].tolist()
    a = service.client.preview(dataset_id, rows=10, sample=True, seed=7, columns=["row_id", "region"])
    b = service.client.preview(dataset_id, rows=10, sample=True, seed=7, columns=["row_id", "region"])
    c = service.client.preview(dataset_id, rows=10, sample=True, seed=8, columns=["row_id", "region"])
    assert [x.name for x in a.columns] == ["row_id", "region"]
    ids = list(a.rows.columns[0].int64_values.values)
    assert ids == list(b.rows.columns[0].int64_values.values) != list(c.rows.columns[0].int64_values.values)
    regions = list(a.rows.columns[1].string_values.values)
    full = frame.reset_index()
    assert regions == [full.loc[full["row_id"] == i, "region"].iloc[0] for i in ids]
    with pytest.raises(InvalidArgumentError) as bad:
        service.client.preview(dataset_id, columns=["nope"])
    assert "'nope'" in bad.value.message


@pytest.mark.parametrize(
    "strategy, extra",
    [
        ("random", {}),
        ("stratified", {}),
        ("group", {"group_column": "tenure"}),
        ("time", {"time_column": "day"}),
    ],
)
def test_splits_are_deterministic_and_downloadable(uploaded, strategy, extra):
    service, dataset_id = uploaded
    first = service.client.create_split(
        dataset_id, train=0.6, validation=0.2, test=0.2, strategy=strategy, seed=11, **extra
    )
    again = service.client.create_split(
        dataset_id, train=0.6, validation=0.2, test=0.2, strategy=strategy, seed=11, **extra
    )
    s = first.split
    assert first.created and not again.created and again.split.split_id == s.split_id
    assert s.train_rows + s.validation_rows + s.test_rows == 205
    parts = {}
    for part in ("train", "validation", "test"):
        buf = io.BytesIO()
        service.client.download(dataset_id, destination=buf, split_id=s.split_id, part=part)
        parts[part] = pq.read_table(io.BytesIO(buf.getvalue())).to_pandas()
    assert [len(parts[p]) for p in ("train", "validation", "test")] == [
        s.train_rows,
        s.validation_rows,
        s.test_rows,
    ]
    if strategy == "group":
        groups = [set(parts[p]["tenure"]) for p in parts]
        assert all(not (groups[i] & groups[j]) for i in range(3) for j in range(i + 1, 3))
    elif strategy == "time":
        assert parts["train"]["day"].max() <= parts["validation"]["day"].min()
        assert parts["validation"]["day"].max() <= parts["test"]["day"].min()
    else:
        assert abs(s.train_rows - 123) <= 2
    if strategy == "stratified":
        shares = [(parts[p]["churn"] == "Yes").mean() for p in parts]
        assert max(shares) - min(shares) < 0.05
    profile = service.client.profile(dataset_id, split_id=s.split_id, part="test")
    assert profile.row_count == s.test_rows and profile.split_id == s.split_id
    preview = service.client.preview(dataset_id, split_id=s.split_id, part="validation", rows=3)
    assert preview.total_rows == s.validation_rows
    stored = service.client.get(dataset_id).version.splits
    assert [x.split_id for x in stored] == [s.split_id]


def test_split_part_profiles_are_stored_with_the_split(uploaded):
    service, dataset_id = uploaded
    s = service.client.create_split(dataset_id, train=0.6, validation=0.2, test=0.2, seed=3).split
    frame = leaky_frame()
    counts = {"train": s.train_rows, "validation": s.validation_rows, "test": s.test_rows}
    service.client.set_roles(dataset_id, types={"tenure": "numeric"})
    canonical = service.client.get(dataset_id).version.canonical_uri
    service.store.delete(service.store.key_from_uri(canonical))  # parts are not profiled again
    profiles = {p: service.client.profile(dataset_id, split_id=s.split_id, part=p) for p in counts}
    for part, profile in profiles.items():
        assert profile.row_count == counts[part] and profile.split_id == s.split_id
        churn = next(c for c in profile.columns if c.name == "churn")
        assert sum(t.count for t in churn.top_values) == counts[part]
    charges = [next(c for c in p.columns if c.name == "charges") for p in profiles.values()]
    assert sum(c.count for c in charges) == len(frame)
    assert min(c.min.double_value for c in charges) == frame["charges"].min()
    tenure = next(c for c in profiles["train"].columns if c.name == "tenure")
    assert tenure.type == schema_pb2.COLUMN_TYPE_NUMERIC  # the type as it is now, set after the split


def test_split_errors(uploaded):
    service, dataset_id = uploaded
    with pytest.raises(InvalidArgumentError) as bad:
        service.client.create_split(dataset_id, train=0.7, validation=0.2, test=0.2)
    assert bad.value.field_violations[0].field == "spec.train_ratio" and "1.1" in bad.value.message
    with pytest.raises(InvalidArgumentError) as bad:
        service.client.create_split(dataset_id, train=0.8, test=0.2, strategy="group", group_column="nope")
    assert bad.value.field_violations[0].field == "spec.group_column"
    service.client.create_split(dataset_id, train=0.8, test=0.2, name="main")
    with pytest.raises(AlreadyExistsError):
        service.client.create_split(dataset_id, train=0.5, test=0.5, name="main")
    assert len(service.client.get(dataset_id).version.splits) == 1
    assert len([k for k in service.leftovers()[2] if "/splits/" in k]) == 1
    with pytest.raises(NotFoundError):
        service.client.profile(dataset_id, split_id="nope", part="train")


def test_list_paginates_and_filters(service):
    for i in range(5):
        service.client.upload(
            io.BytesIO(data.csv_bytes(data.frame(rows=30, seed=i))),
            name=f"set-{i}",
            filename="d.csv",
            tags={"team": "a" if i % 2 else "b"},
        )
    service.client.upload(io.BytesIO(data.csv_bytes()), name="other", filename="d.csv")
    page = service.client.list_page(page_size=2, order_by="name")
    assert [d.name for d in page.datasets] == ["other", "set-0"] and page.next_page_token
    assert [d.name for d in service.client.list(name_prefix="set-", order_by="name desc", page_size=2)] == [
        f"set-{i}" for i in (4, 3, 2, 1, 0)
    ]
    assert sorted(d.name for d in service.client.list(tags={"team": "a"})) == ["set-1", "set-3"]
    with pytest.raises(InvalidArgumentError) as bad:
        service.client.list_page(order_by="size")
    assert bad.value.field_violations[0].field == "order_by"
    with pytest.raises(InvalidArgumentError):
        service.client.list_page(page_token="garbage")
    with pytest.raises(NotFoundError) as missing:
        service.client.get("no-such-dataset")
    assert missing.value.resource_name == "no-such-dataset"


def test_high_cardinality_columns_use_the_sketch(serve, backend, tmp_path):
    """Above 10 000 distinct values, distinct counts are estimated (flagged approximate) and the
    values that were frequent early keep exact counts."""
    from tests.dataset.conftest import start

    service = start(serve, backend, tmp_path, read_block_bytes=65536)  # many batches
    rows = 40_000
    rng = np.random.default_rng(3)
    codes = np.where(
        rng.random(rows) < 0.2, "HOT", np.char.add("K", rng.integers(0, 25_000, rows).astype(str))
    )
    numbers = np.where(rng.random(rows) < 0.1, 7.5, rng.normal(0, 1, rows))
    frame = pd.DataFrame({"code": codes, "x": numbers})
    payload = frame.to_csv(index=False).encode()
    v = service.client.upload(io.BytesIO(payload), name="wide", filename="w.csv").version
    p = service.client.profile(v.ref.dataset_id)
    col = {c.name: c for c in p.columns}
    for name in ("code", "x"):
        exact = frame[name].nunique()
        assert col[name].distinct_count_approximate
        assert abs(col[name].distinct_count - exact) / exact < 0.06
    assert col["code"].top_values[0].value.string_value == "HOT"
    assert col["code"].top_values[0].count == int((frame["code"] == "HOT").sum())
    # every row is in the sample here: the 20 largest counts, ties in the order of the text
    ranked = sorted(frame["code"].value_counts().items(), key=lambda kv: (-kv[1], kv[0]))[:20]
    assert [(t.value.string_value, t.count) for t in col["code"].top_values] == [
        (v, int(c)) for v, c in ranked
    ]
    assert col["x"].top_values[0].value.double_value == 7.5
    assert col["x"].top_values[0].count == int((frame["x"] == 7.5).sum())
    assert p.duplicate_row_count == int(frame.duplicated().sum())
