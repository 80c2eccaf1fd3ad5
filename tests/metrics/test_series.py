"""RecordMetrics + QueryMetrics: aggregations, steps, grouping, paging, downsampling, retention."""

from __future__ import annotations

import pytest

from loopml.client.errors import InvalidArgumentError, NotFoundError
from loopml.metrics.v1 import metrics_service_pb2 as pb
from loopml.runtime.db import migrate
from loopml.services.metrics.core import CoreConfig, MetricsCore
from loopml.services.metrics.core.model import Point
from loopml.services.metrics.repository import Repository
from loopml.services.metrics.rules_repository import RulesRepository
from loopml.services.metrics.server import MIGRATIONS
from tests.metrics.helpers import settings, start

T0 = 1_700_000_040.0 - (1_700_000_040.0 % 3600)  # an hour boundary


def _values(series):
    return {
        tuple(sorted(s.labels.items())): [(round(x.time.seconds - T0), round(x.value, 6)) for x in s.samples]
        for s in series
    }


@pytest.fixture
def loaded(backend, serve):
    server, client = start(serve, backend)
    points = []
    for i in range(120):  # two hours, one point a minute per route, value = minute index
        for route, factor in (("a", 1), ("b", 10)):
            points.append(("http_latency", {"route": route, "dc": "x"}, float(i * factor), T0 + i * 60 + 5))
    assert client.record_metrics(points) == 240
    return client


def test_sum_count_per_hour_grouped_by_label(loaded):
    got = _values(
        loaded.query(
            "http_latency", start=T0, end=T0 + 7200, step_s=3600, aggregation="sum", group_by=["route"]
        )
    )
    assert got == {
        (("route", "a"),): [(0, sum(range(60))), (3600, sum(range(60, 120)))],
        (("route", "b"),): [(0, 10 * sum(range(60))), (3600, 10 * sum(range(60, 120)))],
    }
    counts = _values(loaded.query("http_latency", start=T0, end=T0 + 7200, step_s=3600, aggregation="count"))
    assert all(v == [(0, 60), (3600, 60)] for v in counts.values())


@pytest.mark.parametrize("step", [60, 300, 600, 3600])
def test_rollups_and_raw_points_agree(loaded, step):
    # start on an hour boundary -> the 1-minute, 5-minute or hourly aggregates (as stored when the
    # step is their resolution, grouped per step otherwise); start 1 s later -> raw points.
    for agg in ("avg", "min", "max", "sum", "count"):
        for group_by in ([], ["dc"]):
            rolled = loaded.query(
                "http_latency", start=T0, end=T0 + 7200, step_s=step, aggregation=agg, group_by=group_by
            )
            raw = loaded.query(
                "http_latency",
                start=T0 + 1,
                end=T0 + 7201,
                step_s=step,
                aggregation=agg,
                group_by=group_by,
            )
            assert len(rolled) == len(raw) == (1 if group_by else 2)
            for r, w in zip(rolled, raw, strict=True):
                assert r.labels == w.labels
                assert [round(x.time.seconds - T0) for x in r.samples] == list(range(0, 7200, step))
                assert [x.value for x in r.samples] == pytest.approx([x.value for x in w.samples])


def test_max_per_ten_minutes(loaded):
    assert _values(
        loaded.query(
            "http_latency", start=T0, end=T0 + 1200, step_s=600, aggregation="max", matchers=["route=a"]
        )
    )[(("dc", "x"), ("route", "a"))] == [(0, 9), (600, 19)]


def test_quantile_rate_and_regex_matchers(loaded):
    q = loaded.query(
        "http_latency",
        start=T0,
        end=T0 + 600,
        step_s=600,
        aggregation="quantile",
        quantile=0.5,
        matchers=["route=~a|c"],
    )
    assert [(s.labels["route"], [x.value for x in s.samples]) for s in q] == [("a", [4.5])]
    # a counter growing by 10 a minute on route b: rate = 10/60 per second
    rate = loaded.query(
        "http_latency", start=T0, end=T0 + 1800, step_s=600, aggregation="rate", matchers=["route!~a"]
    )
    assert [round(x.value, 6) for x in rate[0].samples] == [round(100 / 600, 6)] * 2
    rate = loaded.query(  # step = the 5-minute aggregates' resolution: their last values as stored
        "http_latency", start=T0, end=T0 + 1800, step_s=300, aggregation="rate", matchers=["route=b"]
    )
    assert [round(x.value, 6) for x in rate[0].samples] == [round(50 / 300, 6)] * 5


def test_paging_by_series(loaded):
    request = pb.QueryMetricsRequest(name="http_latency", page_size=1)
    request.start_time.FromSeconds(int(T0))
    request.end_time.FromSeconds(int(T0 + 600))
    request.step.FromSeconds(600)
    first = loaded.call("QueryMetrics", request)
    assert len(first.series) == 1 and first.next_page_token
    request.page_token = first.next_page_token
    second = loaded.call("QueryMetrics", request)
    assert len(second.series) == 1 and not second.next_page_token
    assert first.series[0].labels["route"] != second.series[0].labels["route"]


def test_bad_queries(loaded):
    with pytest.raises(NotFoundError) as e:
        loaded.query("no_such_metric", start=T0, end=T0 + 60)
    assert e.value.resource_name == "no_such_metric"
    cases = [
        (dict(name="bad name!", start=T0, end=T0 + 60), "name"),
        (dict(name="http_latency", start=T0 + 60, end=T0), "end_time"),
        (dict(name="http_latency", start=T0, end=T0 + 60, step_s=0), "step"),
        (dict(name="http_latency", start=T0, end=T0 + 60, aggregation="quantile", quantile=1.5), "quantile"),
        (dict(name="http_latency", start=T0, end=T0 + 60, matchers=["1bad=x"]), "matchers[0].label"),
    ]
    for kwargs, field in cases:
        name = kwargs.pop("name")
        with pytest.raises(InvalidArgumentError) as e:
            loaded.query(name, **kwargs)
        assert e.value.field_violations[0].field == field


def test_bad_points_store_nothing(backend, serve):
    _, client = start(serve, backend)
    good = ("ok_metric", {"a": "1"}, 1.0, T0)
    for bad, field in (
        (("bad-name", {}, 1.0, T0), "points[1].name"),
        (("ok_metric", {"bad-label": "x"}, 1.0, T0), "points[1].labels"),
        (("ok_metric", {}, float("nan"), T0), "points[1].value"),
    ):
        with pytest.raises(InvalidArgumentError) as e:
            client.record_metrics([good, bad])
        assert e.value.field_violations[0].field == field
    with pytest.raises(NotFoundError):  # all or nothing: the good point was not stored either
        client.query("ok_metric", start=T0, end=T0 + 60)


def test_retention_keeps_downsampled_aggregates(backend, tmp_path):
    database = settings(backend).open_database()
    migrate(database, MIGRATIONS, "alembic_version_metrics")
    now = T0 + 10 * 86400
    core = MetricsCore(
        Repository(database),
        RulesRepository(database),
        CoreConfig(raw_retention_s=7 * 86400, minute_retention_s=30 * 86400),
        clock=lambda: now,
    )
    old, recent = T0, now - 3600
    core.record_metrics(
        [Point("m", {}, v, old + 60 * i) for i, v in enumerate([1.0, 2.0, 3.0])]
        + [Point("m", {}, 5.0, recent)]
    )
    deleted = core.run_maintenance()
    assert deleted["points"] == 3
    from loopml.services.metrics.core.model import Aggregation, Query

    # the raw points are gone, but the hourly aggregate still answers for that hour
    hourly = core.query(Query("m", T0, T0 + 3600, 3600, Aggregation.SUM))
    assert [v for _, v in hourly[0].samples] == [6.0]
    raw_only = core.query(Query("m", T0 + 1, T0 + 3601, 3600, Aggregation.SUM))
    assert raw_only == []
    database.dispose()
