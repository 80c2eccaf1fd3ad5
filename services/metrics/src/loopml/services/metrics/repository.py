"""Batched reads and writes over the metrics tables. Every write path is one bulk statement per
table; the ingest paths never loop over rows issuing one statement each."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from loopml.runtime.db import Database
from loopml.services.metrics import storage as t
from loopml.services.metrics.core.model import Feedback, Point, PredictionRecord

ROLLUP_RESOLUTIONS = (60, 300, 3600)
_DUMPS = json.JSONEncoder(separators=(",", ":"), allow_nan=True).encode


def labels_key(labels: dict[str, str]) -> str:
    return _DUMPS(dict(sorted(labels.items())))


class RecordCodec(Protocol):
    """Reads stored prediction records back (the API layer's; see convert.RecordCodec)."""

    def decode(self, payload: bytes) -> dict[str, Any]:
        """{"inputs": {column: cells}, "predictions": [...], "classes": [...],
        "probabilities": [...], "labels": {...}}"""
        ...

    def columns(self, payloads: list[bytes], names: list[str]) -> tuple[dict[str, list], list, int]:
        """The named input columns and the predictions of many records, concatenated; rows."""
        ...


class Repository:
    def __init__(self, database: Database, codec: RecordCodec | None = None):
        self.db = database
        self.codec = codec
        self._reading: ContextVar = ContextVar(f"metrics-reading-{id(self)}", default=None)

    @contextmanager
    def reading(self) -> Iterator[None]:
        """The metric-point reads inside the block share one session (one pooled connection and
        transaction): a query's several reads pay for one checkout and commit, not one each."""
        if self._reading.get() is not None:
            yield
            return
        with self.db.session() as session:
            token = self._reading.set(session)
            try:
                yield
            finally:
                self._reading.reset(token)

    @contextmanager
    def _session(self):
        shared = self._reading.get()
        if shared is not None:
            yield shared
        else:
            with self.db.session() as session:
                yield session

    # -- dialect helpers --------------------------------------------------------------------
    def _insert(self, table: sa.Table):
        return (postgresql.insert if self.db.backend == "postgresql" else sqlite.insert)(table)

    def _least(self, a, b):
        return sa.func.least(a, b) if self.db.backend == "postgresql" else sa.func.min(a, b)

    def _greatest(self, a, b):
        return sa.func.greatest(a, b) if self.db.backend == "postgresql" else sa.func.max(a, b)

    # -- metric points --------------------------------------------------------------------
    def record_points(self, batch: Sequence[Point]) -> int:
        keys = {(p.name, labels_key(p.labels)) for p in batch}

        def work(session) -> int:
            ids = self._series_ids(session, keys)
            rows = [
                {"series_id": ids[(p.name, labels_key(p.labels))], "ts": p.time, "value": p.value}
                for p in batch
            ]
            if rows:
                raw = session.connection().connection.driver_connection
                values = [(r["series_id"], r["ts"], r["value"]) for r in rows]
                if self.db.backend == "postgresql":
                    with (
                        raw.cursor() as cur,
                        cur.copy("COPY metrics_points (series_id, ts, value) FROM STDIN") as cp,
                    ):
                        for v in values:
                            cp.write_row(v)
                else:
                    raw.executemany(
                        "INSERT INTO metrics_points (series_id, ts, value) VALUES (?, ?, ?)", values
                    )
                self._upsert_rollups(session, rows)
            return len(rows)

        return self.db.transaction(work)

    def _series_ids(self, session, keys: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
        found = self._lookup_series(session, keys)
        missing = keys - found.keys()
        if missing:
            stmt = self._insert(t.series).on_conflict_do_nothing(index_elements=["name", "labels_key"])
            session.execute(stmt, [{"name": n, "labels_key": k} for n, k in sorted(missing)])
            found.update(self._lookup_series(session, missing))
        return found

    @staticmethod
    def _lookup_series(session, keys: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        by_name: dict[str, list[str]] = defaultdict(list)
        for name, key in keys:
            by_name[name].append(key)
        for name, key_list in by_name.items():
            for i in range(0, len(key_list), 500):
                chunk = key_list[i : i + 500]
                rows = session.execute(
                    sa.select(t.series.c.id, t.series.c.labels_key).where(
                        t.series.c.name == name, t.series.c.labels_key.in_(chunk)
                    )
                )
                out.update({(name, key): sid for sid, key in rows})
        return out

    def _upsert_rollups(self, session, rows: list[dict]) -> None:
        """Fold the batch into the per-minute and per-hour aggregates (downsampling at ingest)."""
        acc: dict[tuple, list[float]] = {}
        for row in rows:
            for res in ROLLUP_RESOLUTIONS:
                key = (row["series_id"], res, (row["ts"] // res) * res)
                a = acc.get(key)
                v, ts = row["value"], row["ts"]
                if a is None:
                    acc[key] = [1, v, v, v, v, ts]
                else:
                    a[0] += 1
                    a[1] += v
                    a[2] = min(a[2], v)
                    a[3] = max(a[3], v)
                    if ts >= a[5]:
                        a[4], a[5] = v, ts
        values = [
            {
                "series_id": s,
                "resolution": r,
                "bucket": b,
                "count": a[0],
                "sum": a[1],
                "min": a[2],
                "max": a[3],
                "last": a[4],
                "last_ts": a[5],
            }
            for (s, r, b), a in sorted(acc.items())  # a fixed order: no deadlocks between batches
        ]
        stmt = self._insert(t.rollups)
        ex, c = stmt.excluded, t.rollups.c
        stmt = stmt.on_conflict_do_update(
            index_elements=["series_id", "resolution", "bucket"],
            set_={
                "count": c.count + ex["count"],
                "sum": c.sum + ex["sum"],
                "min": self._least(c.min, ex["min"]),
                "max": self._greatest(c.max, ex["max"]),
                "last": sa.case((ex.last_ts >= c.last_ts, ex["last"]), else_=c["last"]),
                "last_ts": self._greatest(c.last_ts, ex.last_ts),
            },
        )
        for i in range(0, len(values), 2000):
            session.execute(stmt, values[i : i + 2000])

    def series_of(self, name: str) -> list[tuple[int, dict[str, str]]]:
        with self._session() as s:
            rows = s.execute(sa.select(t.series.c.id, t.series.c.labels_key).where(t.series.c.name == name))
            return [(sid, json.loads(key)) for sid, key in rows]

    def metric_exists(self, name: str) -> bool:
        with self._session() as s:
            return (
                s.execute(sa.select(t.series.c.id).where(t.series.c.name == name).limit(1)).first()
                is not None
            )

    def aggregate_raw(
        self, series_ids: Sequence[int], start: float, end: float, step: float, fn: str
    ) -> list[tuple[int, int, float]]:
        """(series_id, step index, value) with `fn` in sum/avg/min/max/count computed in SQL."""
        c = t.points.c
        bucket = sa.cast(sa.func.floor((c.ts - start) / step), sa.BigInteger).label("b")
        agg = {
            "sum": sa.func.sum(c.value),
            "avg": sa.func.avg(c.value),
            "min": sa.func.min(c.value),
            "max": sa.func.max(c.value),
            "count": sa.func.count(c.value),
        }[fn]
        stmt = (
            sa.select(c.series_id, bucket, agg)
            .where(c.series_id.in_(list(series_ids)), c.ts >= start, c.ts < end)
            .group_by(c.series_id, bucket)
        )
        with self._session() as s:
            return [(sid, int(b), float(v)) for sid, b, v in s.execute(stmt).all()]

    def raw_values(
        self, series_ids: Sequence[int], start: float, end: float
    ) -> list[tuple[int, float, float]]:
        c = t.points.c
        stmt = (
            sa.select(c.series_id, c.ts, c.value)
            .where(c.series_id.in_(list(series_ids)), c.ts >= start, c.ts < end)
            .order_by(c.ts)
        )
        with self._session() as s:
            return [tuple(r) for r in s.execute(stmt).all()]

    def aggregate_rollups(
        self,
        series_ids: Sequence[int],
        resolution: int,
        start: float,
        end: float,
        step: float,
        with_last: bool = False,
    ) -> list[tuple[int, int, int, float, float, float, float, float]]:
        """Per (series, step index): count, sum, min, max, and (with_last) the last value with its
        time. A step equal to the resolution reads the aggregates as stored (no grouping)."""
        c = t.rollups.c
        where = (
            c.series_id.in_(list(series_ids)),
            c.resolution == resolution,
            c.bucket >= start,
            c.bucket < end,
        )
        bucket = sa.cast(sa.func.floor((c.bucket - start) / step), sa.BigInteger)
        if step == resolution:
            stmt = sa.select(c.series_id, bucket, c.count, c.sum, c.min, c.max, c["last"], c.last_ts).where(
                *where
            )
            with self._session() as s:
                return [
                    (sid, b, n, sm, mn, mx, last if with_last else 0.0, ts if with_last else 0.0)
                    for sid, b, n, sm, mn, mx, last, ts in s.execute(stmt).all()
                ]
        # sums as floating point: a BIGINT sum is NUMERIC on PostgreSQL, slow to read back
        stmt = (
            sa.select(
                c.series_id,
                bucket.label("b"),
                sa.cast(sa.func.sum(c.count), sa.Float),
                sa.func.sum(c.sum),
                sa.func.min(c.min),
                sa.func.max(c.max),
            )
            .where(*where)
            .group_by(c.series_id, sa.literal_column("b"))
        )
        last_stmt = sa.select(c.series_id, c.bucket, c["last"], c.last_ts).where(*where)
        with self._session() as s:
            rows = s.execute(stmt).all()
            last: dict[tuple[int, int], tuple[float, float]] = {}
            if rows and with_last:
                for sid, b, value, ts in s.execute(last_stmt):
                    k = (sid, int((b - start) // step))
                    if k not in last or ts >= last[k][1]:
                        last[k] = (value, ts)
        return [
            (sid, b, int(n), sm, mn, mx, *last.get((sid, b), (0.0, 0.0))) for sid, b, n, sm, mn, mx in rows
        ]

    # -- predictions and feedback ------------------------------------------------------------
    def record_predictions(self, batch: Sequence[PredictionRecord]) -> int:
        rows = [
            {
                "request_id": r.request_id,
                "model_name": r.model_name,
                "model_version": r.model_version,
                "ts": r.time,
                "row_count": r.row_count,
                "latency_s": r.latency_s,
                "data": r.payload,
            }
            for r in batch
        ]
        # Duplicates inside the batch count as duplicates too: keep the first.
        unique = list({row["request_id"]: row for row in reversed(rows)}.values())
        tuples = [tuple(row[c] for c in _PREDICTION_COLUMNS) for row in unique]
        bulk = _copy_predictions if self.db.backend == "postgresql" else _insert_or_ignore_predictions
        return self.db.transaction(
            lambda session: bulk(session.connection().connection.driver_connection, tuples)
        )

    def prediction_heads(self, request_ids: Iterable[str]) -> dict[str, tuple[str, int, float, int]]:
        """request_id -> (model, version, time, row_count) for the ids that are stored."""
        ids = list(set(request_ids))
        out = {}
        c = t.predictions.c
        with self.db.session() as s:
            for i in range(0, len(ids), 1000):
                rows = s.execute(
                    sa.select(c.request_id, c.model_name, c.model_version, c.ts, c.row_count).where(
                        c.request_id.in_(ids[i : i + 1000])
                    )
                )
                out.update({rid: (m, v, ts, n) for rid, m, v, ts, n in rows})
        return out

    def record_feedback(self, joined: Sequence[tuple[Feedback, str, int, float]]) -> None:
        """Store feedback joined to its prediction (later feedback for the same row replaces)."""
        rows = {
            (f.request_id, f.row): {
                "request_id": f.request_id,
                "row": f.row,
                "model_name": m,
                "model_version": v,
                "prediction_ts": pts,
                "ts": f.time,
                "actual": _DUMPS(f.actual),
                "business": _DUMPS(f.business),
            }
            for f, m, v, pts in joined
        }
        values = [rows[k] for k in sorted(rows)]
        stmt = self._insert(t.feedback)
        ex = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=["request_id", "row"],
            set_={"ts": ex.ts, "actual": ex.actual, "business": ex.business},
        )

        def work(session) -> None:
            for i in range(0, len(values), 5000):
                session.execute(stmt, values[i : i + 5000])

        if values:
            self.db.transaction(work)

    def predictions_in(
        self, start: float, end: float, model_name: str = "", version: int = 0, with_feedback: bool = False
    ) -> list[dict[str, Any]]:
        """Stored records in [start, end), each a dict with the decoded data and, when asked,
        `feedback`: {row: (actual, business)}."""
        c = t.predictions.c
        where = [c.ts >= start, c.ts < end]
        if model_name:
            where.append(c.model_name == model_name)
        if version:
            where.append(c.model_version == version)
        out = []
        with self.db.session() as s:
            for rid, m, v, ts, n, data in s.execute(
                sa.select(c.request_id, c.model_name, c.model_version, c.ts, c.row_count, c.data).where(
                    *where
                )
            ):
                record = self.codec.decode(data)
                record.update(request_id=rid, model_name=m, model_version=v, ts=ts, row_count=n)
                out.append(record)
            if with_feedback and out:
                fc = t.feedback.c
                fwhere = [fc.prediction_ts >= start, fc.prediction_ts < end]
                if model_name:
                    fwhere.append(fc.model_name == model_name)
                if version:
                    fwhere.append(fc.model_version == version)
                fb: dict[str, dict[int, tuple]] = defaultdict(dict)
                for rid, row, actual, business in s.execute(
                    sa.select(fc.request_id, fc.row, fc.actual, fc.business).where(*fwhere)
                ):
                    fb[rid][row] = (json.loads(actual), json.loads(business))
                for record in out:
                    record["feedback"] = fb.get(record["request_id"], {})
        return out

    def prediction_columns(
        self, start: float, end: float, model_name: str, version: int, names: list[str]
    ) -> tuple[dict[str, list], list, int]:
        """Input columns `names` and predictions of a model version's records in [start, end)."""
        c = t.predictions.c
        with self.db.session() as s:
            payloads = (
                s.execute(
                    sa.select(c.data).where(
                        c.model_name == model_name, c.model_version == version, c.ts >= start, c.ts < end
                    )
                )
                .scalars()
                .all()
            )
        return self.codec.columns([bytes(p) for p in payloads], names)

    def request_values(self, start: float, end: float, field: str) -> list[tuple[str, int, float, float]]:
        """(model, version, time, row_count or latency_s) of every logged request in [start, end)."""
        c = t.predictions.c
        with self.db.session() as s:
            return [
                tuple(r)
                for r in s.execute(
                    sa.select(c.model_name, c.model_version, c.ts, c[field]).where(c.ts >= start, c.ts < end)
                ).all()
            ]

    def prediction_counts(self, start: float, end: float, model_name: str) -> dict[int, int]:
        """Predicted rows per version in the window."""
        c = t.predictions.c
        with self.db.session() as s:
            rows = s.execute(
                sa.select(c.model_version, sa.func.sum(c.row_count))
                .where(c.model_name == model_name, c.ts >= start, c.ts < end)
                .group_by(c.model_version)
            )
            return {int(v): int(n) for v, n in rows}

    def model_known(self, model_name: str) -> bool:
        c = t.predictions.c
        with self.db.session() as s:
            return (
                s.execute(sa.select(c.request_id).where(c.model_name == model_name).limit(1)).first()
                is not None
            )

    def version_known(self, model_name: str, version: int) -> bool:
        c = t.predictions.c
        with self.db.session() as s:
            return (
                s.execute(
                    sa.select(c.request_id)
                    .where(c.model_name == model_name, c.model_version == version)
                    .limit(1)
                ).first()
                is not None
            )

    def latest_version(self, model_name: str) -> int:
        c = t.predictions.c
        with self.db.session() as s:
            v = s.execute(sa.select(sa.func.max(c.model_version)).where(c.model_name == model_name)).scalar()
            return int(v or 0)

    def recent_models(self, since: float) -> list[tuple[str, int]]:
        c = t.predictions.c
        with self.db.session() as s:
            return [
                (m, int(v))
                for m, v in s.execute(
                    sa.select(c.model_name, c.model_version).where(c.ts >= since).distinct()
                )
            ]

    def sample_record(self, model_name: str) -> dict[str, Any] | None:
        """The newest record of a model (to learn its input columns and classes)."""
        c = t.predictions.c
        with self.db.session() as s:
            row = s.execute(
                sa.select(c.data).where(c.model_name == model_name).order_by(c.ts.desc()).limit(1)
            ).first()
        return self.codec.decode(row[0]) if row else None

    # -- retention ------------------------------------------------------------------------
    def delete_before(
        self, raw_before: float, minute_before: float, hour_before: float, predictions_before: float
    ) -> dict[str, int]:
        def work(session) -> dict[str, int]:
            return {
                "points": session.execute(sa.delete(t.points).where(t.points.c.ts < raw_before)).rowcount,
                "minute_rollups": session.execute(
                    sa.delete(t.rollups).where(  # the 1- and 5-minute aggregates
                        t.rollups.c.resolution < 3600, t.rollups.c.bucket < minute_before
                    )
                ).rowcount,
                "hour_rollups": session.execute(
                    sa.delete(t.rollups).where(
                        t.rollups.c.resolution == 3600, t.rollups.c.bucket < hour_before
                    )
                ).rowcount,
                "predictions": session.execute(
                    sa.delete(t.predictions).where(t.predictions.c.ts < predictions_before)
                ).rowcount,
                "feedback": session.execute(
                    sa.delete(t.feedback).where(t.feedback.c.prediction_ts < predictions_before)
                ).rowcount,
            }

        return self.db.transaction(work)


_PREDICTION_COLUMNS = ("request_id", "model_name", "model_version", "ts", "row_count", "latency_s", "data")


def _copy_predictions(pg, rows: list[tuple]) -> int:
    """PostgreSQL: COPY into a per-connection staging table, then one INSERT .. ON CONFLICT DO
    NOTHING; returns how many were new."""
    columns = ", ".join(_PREDICTION_COLUMNS)
    with pg.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS metrics_predictions_stage "
            "(LIKE metrics_predictions) ON COMMIT DELETE ROWS"
        )
        with cur.copy(f"COPY metrics_predictions_stage ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cur.execute(
            f"INSERT INTO metrics_predictions ({columns}) SELECT {columns} FROM metrics_predictions_stage "
            "ON CONFLICT (request_id) DO NOTHING"
        )
        return cur.rowcount


def _insert_or_ignore_predictions(sqlite_conn, rows: list[tuple]) -> int:
    """SQLite: one executemany of INSERT OR IGNORE; the change counter says how many were new."""
    before = sqlite_conn.total_changes
    sqlite_conn.executemany(
        f"INSERT OR IGNORE INTO metrics_predictions ({', '.join(_PREDICTION_COLUMNS)}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    return sqlite_conn.total_changes - before
