"""The inference core with real sklearn models: loading, cache, signature checks, LRU, batching,
hot reload, traffic split and the prediction log."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from loopml.modelkit import dump_bundle
from loopml.runtime.errors import DataLoss, FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from loopml.services.inference.core import (
    ArtifactCache,
    BatchingPolicy,
    ModelManager,
    ModelRef,
    PredictionLog,
    batch_from_lists,
)
from tests.inference import models


def expected(bundle, columns):
    return bundle.predict(columns)


def test_load_by_alias_version_and_latest(manager, source, bundles):
    v2 = source.add_version("churn", bundles["flipped"])
    by_alias = manager.predict(ModelRef("churn"), batch_from_lists(models.rows()))
    by_version = manager.predict(ModelRef("churn", version=2), batch_from_lists(models.rows()))
    latest = manager.predict(ModelRef("churn", latest=True), batch_from_lists(models.rows()))
    assert (by_alias.model_version, by_version.model_version, latest.model_version) == (1, v2, v2)
    want = expected(bundles["classifier"], models.rows())
    assert list(by_alias.prediction.predictions) == list(want.predictions)
    np.testing.assert_allclose(by_alias.prediction.probabilities, want.probabilities)
    assert list(by_version.prediction.predictions) != list(by_alias.prediction.predictions)
    assert len({by_alias.request_id, by_version.request_id}) == 2


def test_unknown_model_alias_version_are_not_found(manager):
    for ref, name in [
        (ModelRef("nope"), "nope"),
        (ModelRef("churn", alias="staging"), "staging"),
        (ModelRef("churn", version=9), "churn/9"),
    ]:
        with pytest.raises(NotFound) as error:
            manager.load(ref)
        assert name in error.value.resource_name


def test_cache_refetches_a_corrupted_file_and_refuses_wrong_bytes(source, bundles, tmp_path):
    cache = ArtifactCache(tmp_path / "cache")
    manager = ModelManager(source, cache)
    deployment = manager.load(ModelRef("churn"))
    cached = cache.folder / f"{deployment.primary.sha256}.bundle"
    assert cached.exists()
    cached.write_bytes(b"tampered")
    manager.unload(ModelRef("churn"))
    assert manager.load(ModelRef("churn")).primary.version == 1  # re-fetched, verified
    assert cached.read_bytes() != b"tampered"
    data, digest = dump_bundle(bundles["flipped"])
    source.add_version("bad", data + b"x", sha256=digest)
    with pytest.raises(DataLoss):
        manager.load(ModelRef("bad", version=1))
    assert not (cache.folder / f"{digest}.bundle").exists()  # wrong bytes are never cached
    manager.close()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda c: c.pop("income"), "inputs.income"),
        (lambda c: c.update(extra=[1, 2, 3]), "inputs.extra"),
        (lambda c: c.update(Income=c.pop("income")), "inputs.Income"),
        (lambda c: c.update(income=["a", "b", "c"]), "inputs.income"),
        (lambda c: c.update(income=[1.0, float("nan"), 2.0]), "inputs.income"),
        (lambda c: c.update(income=[1.0, None, 2.0]), "inputs.income"),
        (lambda c: c.update(city=[1.5, 2.5, 3.5]), "inputs.city"),
    ],
    ids=["missing", "extra", "misnamed", "wrong-type", "nan", "null-not-nullable", "float-as-category"],
)
def test_bad_columns_name_the_field(manager, change, field):
    columns = models.rows()
    change(columns)
    with pytest.raises(InvalidArgument) as error:
        manager.predict(ModelRef("churn"), batch_from_lists(columns))
    assert error.value.field == field


def test_missing_values_where_allowed(manager, bundles):
    columns = models.rows()
    columns["age"][0] = None
    columns["city"][1] = None
    result = manager.predict(ModelRef("churn"), batch_from_lists(columns))
    assert len(result.prediction.predictions) == 3
    assert set(result.prediction.predictions) <= {"yes", "no"}


def test_request_row_limit(source, tmp_path):
    manager = ModelManager(source, ArtifactCache(tmp_path), max_request_rows=2)
    with pytest.raises(ResourceExhausted) as error:
        manager.predict(ModelRef("churn"), batch_from_lists(models.rows(3)))
    assert "limit is 2 rows" in error.value.message
    assert (
        len(manager.predict(ModelRef("churn"), batch_from_lists(models.rows(2))).prediction.predictions) == 2
    )
    manager.close()


def test_memory_cap_unloads_least_recently_used(source, bundles, tmp_path, monkeypatch):
    # The eviction order under test, not the measuring (the next test measures for real): with a
    # flat resident size every model counts as its artifact's size, whatever else this process
    # allocated before, so the cap below holds exactly two of them.
    from loopml.services.inference.core import manager as manager_module

    monkeypatch.setattr(manager_module, "resident_bytes", lambda: 0)
    size = len(dump_bundle(bundles["classifier"])[0])
    source.add_version("other", bundles["classifier"])
    manager = ModelManager(source, ArtifactCache(tmp_path), memory_limit_bytes=int(size * 2.5))
    manager.load(ModelRef("churn"))
    manager.load(ModelRef("other", version=1))
    manager.predict(ModelRef("churn"), batch_from_lists(models.rows()))  # churn is now the most recent
    manager.load(ModelRef("churn", version=1))
    loaded = {str(d.ref) for d in manager.loaded()}
    assert loaded == {"churn@production", "churn@v1"}
    assert manager.memory_used_bytes() <= manager.memory_limit_bytes
    tiny = ModelManager(source, ArtifactCache(tmp_path), memory_limit_bytes=100)
    with pytest.raises(ResourceExhausted) as error:
        tiny.load(ModelRef("churn"))
    assert "memory cap is 100 bytes" in error.value.message
    manager.close()
    tiny.close()


def test_memory_is_measured_at_load_and_the_cap_uses_it(source, tmp_path):
    megabyte = 1024 * 1024
    for name in ("bulky-a", "bulky-b"):
        source.add_version(name, models.bulky(48))
    artifact = len(dump_bundle(models.bulky(48))[0])
    assert artifact < megabyte  # estimated from its artifact, this model would look tiny
    manager = ModelManager(source, ArtifactCache(tmp_path), memory_limit_bytes=80 * megabyte)
    first = manager.load(ModelRef("bulky-a", version=1))
    assert 40 * megabyte < first.memory_bytes < 80 * megabyte
    assert manager.memory_used_bytes() == first.memory_bytes
    manager.load(ModelRef("bulky-b", version=1))  # both do not fit under 80 MB: a is evicted
    assert [str(d.ref) for d in manager.loaded()] == ["bulky-b@v1"]
    manager.close()


def test_dynamic_batching_splits_results_back(source, bundles, tmp_path):
    policy = BatchingPolicy(enabled=True, max_batch_size=16, max_delay_s=0.05)
    manager = ModelManager(source, ArtifactCache(tmp_path), default_batching=policy)
    manager.load(ModelRef("churn"))
    inputs = [models.rows(1 + i % 3, seed=i) for i in range(24)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(lambda c: manager.predict(ModelRef("churn"), batch_from_lists(c)), inputs))
    for columns, result in zip(inputs, results, strict=True):
        want = bundles["classifier"].predict(columns)
        assert list(result.prediction.predictions) == list(want.predictions)
        np.testing.assert_allclose(result.prediction.probabilities, want.probabilities)
    manager.close()


def test_batching_without_delay_merges_what_queues_while_the_model_is_busy(source, tmp_path):
    source.add_version("slow", models.slow(0.05))
    policy = BatchingPolicy(enabled=True, max_batch_size=1024, max_delay_s=0.0)
    manager = ModelManager(source, ArtifactCache(tmp_path), default_batching=policy)
    deployment = manager.load(ModelRef("slow", version=1))
    estimator = deployment.primary.bundle.estimator
    calls_before = estimator.calls
    values = [[i / 10, i / 20] for i in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(
            pool.map(
                lambda v: manager.predict(ModelRef("slow", version=1), batch_from_lists({"x": v})), values
            )
        )
    for value, result in zip(values, results, strict=True):
        np.testing.assert_allclose(result.prediction.probabilities[:, 1], value)
    # The first request runs alone (nobody else queued yet); the rest queue during its 50 ms call.
    assert estimator.calls - calls_before <= 3
    manager.close()


def test_batching_waits_for_requests_the_server_is_already_serving(source, tmp_path):
    """With a delay, a batch takes every request that busy server threads bring, and goes as soon
    as all of them have arrived (long before its hour-long delay)."""
    source.add_version("slow", models.slow(0.0))
    policy = BatchingPolicy(enabled=True, max_batch_size=1024, max_delay_s=3600.0)
    # Four server threads, each serving one of the requests below.
    manager = ModelManager(source, ArtifactCache(tmp_path), default_batching=policy, busy_threads=lambda: 4)
    deployment = manager.load(ModelRef("slow", version=1))
    estimator = deployment.primary.bundle.estimator
    calls_before = estimator.calls
    values = [[0.1], [0.2, 0.3], [0.4], [0.5, 0.6, 0.7]]
    results: dict[int, object] = {}

    def serve(index: int) -> None:
        results[index] = manager.predict(ModelRef("slow", version=1), batch_from_lists({"x": values[index]}))

    threads = [threading.Thread(target=serve, args=(i,)) for i in range(len(values))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert estimator.calls - calls_before == 1  # one merged call
    for index, value in enumerate(values):
        np.testing.assert_allclose(results[index].prediction.probabilities[:, 1], value)
    manager.close()


def test_batching_does_not_wait_when_no_other_request_is_being_served(source, tmp_path):
    source.add_version("slow", models.slow(0.0))
    policy = BatchingPolicy(enabled=True, max_batch_size=1024, max_delay_s=3600.0)
    manager = ModelManager(source, ArtifactCache(tmp_path), default_batching=policy, busy_threads=lambda: 1)
    manager.load(ModelRef("slow", version=1))
    answered = []

    def serve() -> None:
        answered.append(manager.predict(ModelRef("slow", version=1), batch_from_lists({"x": [0.25]})))

    thread = threading.Thread(target=serve)
    thread.start()
    thread.join(timeout=60)  # the delay is an hour: only a batch that does not wait answers
    assert len(answered) == 1
    np.testing.assert_allclose(answered[0].prediction.probabilities[:, 1], [0.25])
    manager.close()


def test_hot_reload_swaps_without_failed_requests(source, manager, bundles):
    manager.load(ModelRef("churn"))
    manager.follow_events()
    _wait_for(lambda: source.watcher_count == 1)
    v2 = source.add_version("churn", bundles["flipped"])
    failures, versions, stop = [], set(), threading.Event()

    def steady_load():
        while not stop.is_set():
            try:
                versions.add(
                    manager.predict(ModelRef("churn"), batch_from_lists(models.rows())).model_version
                )
            except Exception as exc:  # noqa: BLE001 - collected and asserted empty
                failures.append(exc)

    threads = [threading.Thread(target=steady_load) for _ in range(4)]
    for t in threads:
        t.start()
    source.set_alias("churn", "production", v2)
    _wait_for(lambda: manager.get(ModelRef("churn")).primary.version == v2)
    _wait_for(lambda: v2 in versions)
    stop.set()
    for t in threads:
        t.join()
    assert failures == []
    assert versions == {1, v2}


def test_failing_new_version_leaves_the_old_serving(source, manager, bundles):
    manager.load(ModelRef("churn"))
    manager.follow_events()
    _wait_for(lambda: source.watcher_count == 1)
    bad = source.add_version("churn", bundles["broken"])
    source.set_alias("churn", "production", bad)
    deployment = manager.get(ModelRef("churn"))
    _wait_for(lambda: deployment.failed is not None)
    assert deployment.failed[0] == bad and "smoke prediction" in deployment.failed[1]
    assert manager.predict(ModelRef("churn"), batch_from_lists(models.rows())).model_version == 1
    states = {(v.version, v.state) for v in deployment.versions()}
    assert states == {(1, "READY"), (bad, "FAILED")}


def test_traffic_split_between_two_versions(source, bundles, tmp_path):
    manager = ModelManager(source, ArtifactCache(tmp_path), seed=7)
    source.add_version("churn", bundles["flipped"])
    manager.load(ModelRef("churn"), canary=ModelRef("churn", version=2), canary_weight=0.3)
    answered = [
        manager.predict(ModelRef("churn"), batch_from_lists(models.rows(1))).model_version for _ in range(200)
    ]
    share = answered.count(2) / len(answered)
    assert set(answered) == {1, 2} and 0.15 < share < 0.45
    with pytest.raises(InvalidArgument) as error:
        manager.load(ModelRef("churn"), canary=ModelRef("churn", version=2), canary_weight=1.5)
    assert error.value.field == "canary_weight"
    manager.close()


def test_broken_artifact_fails_to_load_with_reason(source, bundles, manager):
    source.add_version("sick", bundles["broken"])
    with pytest.raises(FailedPrecondition) as error:
        manager.load(ModelRef("sick", version=1))
    assert "smoke prediction" in error.value.message


class _ListSink:
    def __init__(self, fail: bool = False):
        self.records, self.fail = [], fail

    def send(self, records):
        if self.fail:
            raise ConnectionError("metrics is down")
        self.records.extend(records)


def test_prediction_log_delivers_and_counts_drops(source, tmp_path):
    sink = _ListSink()
    manager = ModelManager(source, ArtifactCache(tmp_path), prediction_log=PredictionLog(sink))
    result = manager.predict(ModelRef("churn"), batch_from_lists(models.rows()), labels={"segment": "a"})
    _wait_for(lambda: len(sink.records) == 1)
    record = sink.records[0]
    assert (record.request_id, record.model_version, record.labels) == (
        result.request_id,
        1,
        {"segment": "a"},
    )
    manager.close()

    down = PredictionLog(_ListSink(fail=True), capacity=2, retry_s=0.05)
    manager = ModelManager(source, ArtifactCache(tmp_path), prediction_log=down)
    for _ in range(5):
        manager.predict(ModelRef("churn"), batch_from_lists(models.rows()))  # never fails for the log
    _wait_for(lambda: down.dropped == 5)
    manager.close()


def _wait_for(condition, timeout: float = 20.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)
