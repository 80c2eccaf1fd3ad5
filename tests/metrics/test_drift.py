"""GetDriftReport: PSI on training quantiles, categorical with an unseen bucket, KS, ranking."""

from __future__ import annotations

import time

import numpy as np
import pytest

from loopml.client.errors import InvalidArgumentError, NotFoundError
from loopml.common.v1 import stats_pb2, value_pb2
from loopml.dataset.v1 import dataset_pb2
from loopml.metrics.v1 import metrics_pb2
from loopml.services.metrics.core import drift
from loopml.services.metrics.remote import column_reference
from loopml.services.metrics.server import MetricsDeps
from tests.metrics.helpers import record, start

NOW = time.time()
PROBS = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
rng = np.random.default_rng(7)
TRAIN_X = rng.normal(0, 1, 5000)
TRAIN_Z = rng.normal(5, 2, 5000)


def numeric_ref(name, sample):
    return drift.FeatureReference(
        name,
        drift.NUMERIC,
        "numeric",
        len(sample),
        0,
        tuple((p, float(np.quantile(sample, p))) for p in PROBS),
    )


class BuiltReference:
    """A ReferenceSource built in the test (the dataset service's profile stands in as data)."""

    def reference_for(self, model_name, version, dataset_id="", dataset_version=0, split_id=""):
        if model_name != "m":
            raise AssertionError("unexpected model")
        color = drift.FeatureReference(
            "color",
            drift.CATEGORICAL,
            "categorical",
            1000,
            0,
            top_values=(("red", 500), ("blue", 300), ("green", 200)),
            known_categories=("red", "blue", "green"),
        )
        label = drift.FeatureReference(
            "label", drift.CATEGORICAL, "categorical", 1000, 0, top_values=(("yes", 500), ("no", 500))
        )
        return drift.Reference(
            5000,
            {"x": numeric_ref("x", TRAIN_X), "z": numeric_ref("z", TRAIN_Z), "color": color},
            label,
            "ds1",
            3,
            "split1",
        )


def _send_live(client, n=400):
    live_x = rng.normal(1.5, 1, n)  # shifted
    live_z = rng.normal(5, 2, n)  # same as training
    colors = rng.choice(["red", "blue", "purple"], n, p=[0.5, 0.3, 0.2])  # purple never seen
    preds = rng.choice(["yes", "no"], n)
    client.record_predictions(
        [
            record(
                f"d{i}",
                "m",
                4,
                {"x": [float(live_x[i])], "z": [float(live_z[i])], "color": [str(colors[i])]},
                [str(preds[i])],
                at=NOW - 30,
            )
            for i in range(n)
        ]
    )
    return live_x, colors


def test_drift_report_ranks_the_shifted_feature_first(backend, serve):
    _, client = start(serve, backend, MetricsDeps(references=BuiltReference()))
    live_x, colors = _send_live(client)
    report = client.drift("m", version=4, window_s=600)
    assert (report.model_version, report.live_row_count, report.reference_row_count) == (4, 400, 5000)
    assert report.reference_dataset.dataset_id == "ds1" and report.reference_split_id == "split1"
    by_name = {f.feature: f for f in report.features}
    assert [f.rank for f in report.features] == [1, 2, 3]
    assert report.features[0].feature in ("x", "color")
    x = by_name["x"]
    assert x.severity == metrics_pb2.DRIFT_SEVERITY_DRIFT and x.psi > 0.25
    # KS against the reference CDF is close to the exact two-sample statistic
    grid = np.sort(np.concatenate([TRAIN_X, live_x]))
    exact = np.max(
        np.abs(
            np.searchsorted(np.sort(TRAIN_X), grid, "right") / len(TRAIN_X)
            - np.searchsorted(np.sort(live_x), grid, "right") / len(live_x)
        )
    )
    assert abs(x.ks_statistic - exact) < 0.05 and x.ks_p_value < 1e-6
    assert sum(b.reference_fraction for b in x.bins) == pytest.approx(1.0)
    assert sum(b.live_fraction for b in x.bins) == pytest.approx(1.0)
    z = by_name["z"]
    assert z.severity == metrics_pb2.DRIFT_SEVERITY_NONE and z.psi < 0.1
    color = by_name["color"]
    unseen = [b for b in color.bins if b.unseen]
    assert len(unseen) == 1 and unseen[0].label == "(unseen)" and unseen[0].reference_fraction == 0
    assert unseen[0].live_fraction == pytest.approx(np.mean(colors == "purple"))
    assert color.severity == metrics_pb2.DRIFT_SEVERITY_DRIFT and not color.HasField("ks_statistic")
    assert report.prediction_drift.feature == "prediction"
    assert report.severity == metrics_pb2.DRIFT_SEVERITY_DRIFT


def test_thresholds_and_min_rows(backend, serve):
    _, client = start(serve, backend, MetricsDeps(references=BuiltReference()))
    _send_live(client, n=50)
    report = client.drift("m", version=4, window_s=600, features=["z"])
    assert [f.feature for f in report.features] == ["z"]
    assert report.features[0].severity == metrics_pb2.DRIFT_SEVERITY_UNSPECIFIED  # fewer than 100 rows
    lenient = client.drift(
        "m",
        version=4,
        window_s=600,
        features=["x"],
        thresholds=metrics_pb2.DriftThresholds(psi_warning=5, psi_drift=10, ks_drift=0.99, min_live_rows=10),
    )
    assert lenient.features[0].severity == metrics_pb2.DRIFT_SEVERITY_NONE
    assert lenient.thresholds.psi_drift == 10
    with pytest.raises(InvalidArgumentError) as e:
        client.drift("m", version=4, features=["nope"])
    assert e.value.field_violations[0].field == "features[0]"
    with pytest.raises(InvalidArgumentError) as e:
        client.drift("m", version=4, thresholds=metrics_pb2.DriftThresholds(psi_warning=0.5, psi_drift=0.2))
    assert e.value.field_violations[0].field == "thresholds.psi_drift"
    with pytest.raises(NotFoundError):
        client.drift("unknown-model")


def test_reference_from_a_dataset_profile_column():
    """The gRPC reference source's translation of a dataset profile column."""
    col = dataset_pb2.ColumnProfile(
        name="age",
        type=2,
        count=90,
        missing_count=10,
        quantiles=[stats_pb2.Quantile(quantile=p, value=v) for p, v in zip(PROBS, range(9), strict=False)],
        histogram=stats_pb2.Histogram(bin_edges=[0, 4, 8], counts=[30, 60]),
    )
    ref = column_reference(col)
    assert (ref.kind, ref.type_name, ref.count, ref.missing) == (drift.NUMERIC, "integer", 90, 10)
    assert ref.histogram_counts == (30, 60) and ref.quantiles[4] == (0.5, 4.0)
    cat = dataset_pb2.ColumnProfile(
        name="c",
        type=4,
        count=5,
        top_values=[stats_pb2.ValueCount(value=value_pb2.Value(string_value="a"), count=3)],
    )
    assert column_reference(cat).top_values == (("a", 3),)
    result = drift.feature_drift(ref, [1.0] * 50 + [6.0] * 100, drift.Thresholds(min_live_rows=10))
    assert result.ks is not None and result.reference_missing == pytest.approx(0.1)


def test_low_cardinality_numeric_and_boolean_categories():
    """0/1 flags: binned by value (quantiles cannot cut them), and True/1/"true" are one category."""
    flag = drift.FeatureReference(
        "flag",
        drift.NUMERIC,
        "integer",
        100,
        0,
        quantiles=tuple((p, 0.0 if p < 0.84 else 1.0) for p in PROBS),
        top_values=(("0", 84), ("1", 16)),
    )
    same = drift.feature_drift(flag, [0] * 84 + [1] * 16, drift.Thresholds(min_live_rows=10))
    assert same.psi == pytest.approx(0.0, abs=1e-9) and same.ks == pytest.approx(0.0, abs=1e-9)
    assert [(b.label, b.reference) for b in same.bins[:2]] == [("0", 0.84), ("1", 0.16)]
    flipped = drift.feature_drift(flag, [1] * 84 + [0] * 16, drift.Thresholds(min_live_rows=10))
    assert flipped.ks == pytest.approx(0.68) and flipped.severity == "drift"
    boolean = drift.FeatureReference(
        "b", drift.CATEGORICAL, "boolean", 10, 0, top_values=(("1", 9), ("0", 1))
    )
    result = drift.feature_drift(boolean, [True] * 9 + [False], drift.Thresholds(min_live_rows=1))
    assert result.psi == pytest.approx(0.0, abs=1e-9)
    assert [b.live for b in result.bins if b.unseen] == [0.0]
