"""The estimator classes artifacts pickle: they predict without the training stack."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pandas as pd

from loopml.modelkit import (
    ColumnSpec,
    DatetimeExpander,
    DecodedClassifier,
    ModelBundle,
    TabularMLPClassifier,
    TabularMLPRegressor,
    WeightedEnsemble,
    dump_bundle,
    load_bundle,
)


def _xor(rows=200):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, 2)).astype(np.float32)
    return X, ((X[:, 0] > 0) ^ (X[:, 1] > 0)).astype(int)


def test_mlp_learns_and_serves_from_numpy_without_torch(tmp_path):
    X, y = _xor()
    model = TabularMLPClassifier(hidden_units=32, layers=2, epochs=60, learning_rate=0.01, dropout=0.0).fit(
        X, y
    )
    assert (model.predict(X) == y).mean() > 0.9  # a linear model cannot get XOR
    assert all(isinstance(w, np.ndarray) for w in model.weights_)
    path = tmp_path / "mlp.pkl"
    path.write_bytes(pickle.dumps(model))
    # a process where torch cannot be imported still loads and predicts
    script = (
        "import sys, pickle\n"
        "class NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch': raise ImportError('torch is blocked')\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "import numpy as np\n"
        f"m = pickle.loads(open({str(path)!r}, 'rb').read())\n"
        "print(m.predict_proba(np.zeros((3, 2), dtype='float32')).shape, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "(3, 2) False"


def test_mlp_regressor_fits_a_line():
    X = np.linspace(-1, 1, 200).reshape(-1, 1).astype(np.float32)
    y = 3 * X[:, 0] + 10
    model = TabularMLPRegressor(hidden_units=16, layers=1, epochs=80, learning_rate=0.01, dropout=0.0).fit(
        X, y
    )
    assert np.abs(model.predict(X) - y).mean() < 0.5


class _Constant:
    def __init__(self, proba):
        self.proba = np.asarray(proba, dtype=float)

    def predict_proba(self, X):
        return np.tile(self.proba, (len(X), 1))

    def predict(self, X):
        return np.full(len(X), self.proba[0])


def test_weighted_ensemble_and_decoded_labels_in_a_bundle():
    ensemble = WeightedEnsemble(
        [_Constant([0.9, 0.1]), _Constant([0.1, 0.9])], [3, 1], "binary", classes=[0, 1]
    )
    assert np.allclose(ensemble.predict_proba([[0]]), [[0.7, 0.3]])
    model = DecodedClassifier(ensemble, ["no", "yes"])
    assert list(model.predict([[0], [1]])) == ["no", "no"]
    bundle = ModelBundle(
        model, "binary", [ColumnSpec("x", "numeric")], "label", ["no", "yes"], feature_importances={"x": 1.0}
    )
    data, sha = dump_bundle(bundle)
    loaded = load_bundle(data, sha)
    assert list(loaded.predict({"x": [1.0]}).predictions) == ["no"] and loaded.feature_importances == {
        "x": 1.0
    }
    regression = WeightedEnsemble([_Constant([2.0]), _Constant([4.0])], [1, 1], "regression")
    assert np.allclose(regression.predict([[0]]), [3.0])


def test_datetime_expander_parts():
    frame = pd.DataFrame({"when": pd.to_datetime(["2024-03-05 10:00", None])})
    out = DatetimeExpander().fit(frame).transform(frame)
    assert out.shape == (2, 6) and list(out[0][:5]) == [2024, 3, 5, 1, 10] and np.isnan(out[1][0])
