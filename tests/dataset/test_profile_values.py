"""Profile statistics on awkward values, read through the client as a user sees them: text with
nulls, empty, long and non-ASCII values; numbers with nulls and large magnitudes; top values of
mostly distinct integers, reals and times, whose ties are ranked in the order of their text."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from tests.dataset.conftest import start


def jsonl(frame: pd.DataFrame) -> bytes:
    """JSON Lines keep empty strings apart from nulls (CSV reads an empty field as missing)."""
    records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()


def text_frame() -> pd.DataFrame:
    """Mostly distinct notes (more than 10 000, so they are counted with the sketch and hashed)
    with non-ASCII, empty, long and missing ones, a tag column with few values, and rows
    repeated far from their first copy, in batches with and without non-ASCII or long values."""
    rows = 24_000
    notes: list[str | None] = []
    for i in range(rows):
        if i % 53 == 0:
            notes.append(None)
        elif i % 101 == 0:
            notes.append("")
        elif i % 37 == 0:
            notes.append(f"café {i} 日本語 ✓")
        elif i % 997 == 0:
            notes.append("x" * 300 + str(i))
        else:
            notes.append(f"note {i}")
    tags = np.array(["", "é", "plain", "long " * 40, None], dtype=object)[np.arange(rows) % 5]
    frame = pd.DataFrame({"note": notes, "tag": tags})
    ascii_rows = [i for i in range(2_000) if notes[i] is not None and notes[i].isascii()]
    other_rows = [i for i in range(2_000) if notes[i] is not None and not notes[i].isascii()]
    repeated = frame.iloc[ascii_rows[:150] + other_rows[:20]]
    return pd.concat([frame, repeated], ignore_index=True)


def test_text_statistics_with_nulls_empty_long_and_non_ascii_values(serve, backend, tmp_path):
    service = start(serve, backend, tmp_path, read_block_bytes=65536)  # many batches
    frame = text_frame()
    v = service.client.upload(io.BytesIO(jsonl(frame)), name="text", filename="t.jsonl").version
    p = service.client.profile(v.ref.dataset_id)
    col = {c.name: c for c in p.columns}
    assert p.row_count == len(frame)
    assert p.duplicate_row_count == int(frame.duplicated().sum()) >= 170
    for name in ("note", "tag"):
        values = frame[name].dropna()
        assert col[name].count == len(values) and col[name].missing_count == frame[name].isna().sum()
        # lengths in characters, not bytes
        assert col[name].mean_length == pytest.approx(values.str.len().mean())
        assert col[name].min.string_value == min(values) and col[name].max.string_value == max(values)
    exact = frame["note"].nunique()
    assert col["note"].distinct_count_approximate
    assert abs(col["note"].distinct_count - exact) / exact < 0.06
    assert col["tag"].distinct_count == 4 and not col["tag"].distinct_count_approximate
    ranked = sorted(frame["tag"].value_counts().items(), key=lambda kv: (-kv[1], kv[0]))
    assert [(t.value.string_value, t.count) for t in col["tag"].top_values] == ranked


def test_number_moments_with_nulls_and_large_magnitudes(service):
    rng = np.random.default_rng(11)
    rows = 3_000
    frame = pd.DataFrame(
        {
            "big": (2**62 + rng.integers(0, 10**6, rows)).astype(np.int64),  # sums overflow int64
            "offset": np.round(1e9 + rng.uniform(0, 1, rows), 3),  # a small spread on a large mean
            "sparse": np.where(np.arange(rows) % 10 == 0, rng.normal(5, 2, rows), np.nan),
            "one": np.where(np.arange(rows) == 7, 42.5, np.nan),
            "small": rng.integers(-5, 5, rows),
        }
    )
    v = service.client.upload(
        io.BytesIO(frame.to_csv(index=False).encode()), name="n", filename="n.csv"
    ).version
    col = {c.name: c for c in service.client.profile(v.ref.dataset_id).columns}
    for name in frame.columns:
        values = frame[name].dropna()
        # the spread from the smallest value: exact in float64 even where the values are not
        low = values.min()
        spread = (values - low).to_numpy(dtype=np.float64)
        assert col[name].count == len(values) and col[name].missing_count == rows - len(values)
        assert col[name].mean == pytest.approx(float(low) + spread.mean(), rel=1e-12)
        assert col[name].std == pytest.approx(spread.std(), rel=1e-2 if name == "big" else 1e-6, abs=1e-9)
    assert col["one"].std == 0.0 and col["one"].mean == 42.5
    assert (
        col["big"].min.int64_value == frame["big"].min() and col["big"].max.int64_value == frame["big"].max()
    )


def ranked_top(series: pd.Series, text=str) -> list[tuple[object, int]]:
    """The 20 most frequent values, ties in the order of their text."""
    return sorted(series.value_counts().items(), key=lambda kv: (-kv[1], text(kv[0])))[:20]


def test_top_values_of_mostly_distinct_columns_rank_ties_by_their_text(service):
    """More than 10 000 distinct values: the top values come from the row sample (every row here),
    where nearly every value is a tie at one occurrence."""
    rng = np.random.default_rng(5)
    rows = 30_000
    ints = rng.permutation(rows).astype(np.int64) - 1_000  # negatives and positives, all distinct
    ints[:30] = ints[30:60]  # 30 values twice
    ints[60:63] = ints[63]  # one value four times
    reals = np.round(rng.normal(0, 1000, rows), 4)
    reals[:8] = reals[100:108]
    start = np.datetime64("2024-03-01T00:00:00")
    times = start + rng.permutation(rows).astype("timedelta64[s]") * 7
    times[:12] = times[200:212]
    times[12:15] = times[300]
    frame = pd.DataFrame({"i": ints, "x": reals, "when": times})
    payload = frame.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%S").encode()
    v = service.client.upload(io.BytesIO(payload), name="ties", filename="ties.csv").version
    col = {c.name: c for c in service.client.profile(v.ref.dataset_id).columns}
    assert col["i"].distinct_count_approximate and col["i"].top_values[0].count == 4
    assert [(t.value.int64_value, t.count) for t in col["i"].top_values] == ranked_top(frame["i"])
    assert [(t.value.double_value, t.count) for t in col["x"].top_values] == ranked_top(frame["x"])
    seconds = frame["when"].astype("datetime64[s]").astype(np.int64)
    top_times = [(t.value.timestamp_value.seconds, t.count) for t in col["when"].top_values]
    assert top_times == ranked_top(seconds, text=lambda s: str(pd.Timestamp(s, unit="s")))
    assert top_times[0][1] == 4 and len(top_times) == 20
