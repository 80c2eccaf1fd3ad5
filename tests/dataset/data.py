"""Small test files built in code."""

from __future__ import annotations

import gzip
import io
import json

import numpy as np
import pandas as pd


def frame(rows: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(rows)],
            "age": rng.integers(18, 80, rows),
            "income": np.round(rng.normal(50_000, 12_000, rows), 2),
            "plan": rng.choice(["basic", "plus", "pro"], rows),
            "signup": pd.date_range("2024-01-01", periods=rows, freq="D").strftime("%Y-%m-%d"),
            "active": rng.choice(["yes", "no"], rows),
            "churn": np.where(np.arange(rows) % 3 == 0, "Yes", "No"),
        }
    )


def csv_bytes(df: pd.DataFrame | None = None, sep: str = ",") -> bytes:
    return (frame() if df is None else df).to_csv(index=False, sep=sep).encode()


def parquet_bytes(df: pd.DataFrame | None = None) -> bytes:
    buf = io.BytesIO()
    (frame() if df is None else df).to_parquet(buf, index=False)
    return buf.getvalue()


def jsonl_bytes(df: pd.DataFrame | None = None) -> bytes:
    df = frame() if df is None else df
    return "".join(json.dumps(r) + "\n" for r in df.to_dict(orient="records")).encode()


def gz(data: bytes) -> bytes:
    return gzip.compress(data)
