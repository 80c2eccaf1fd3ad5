"""The artifact contract: what trainer writes, inference can load, and only with the right sha256."""

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from loopml.modelkit import ColumnSpec, ModelBundle, dump_bundle, load_bundle
from loopml.runtime.errors import DataLoss, InvalidArgument


def _bundle():
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], "y": [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]})
    labels = np.array(["no", "no", "no", "yes", "yes", "yes"])
    model = LogisticRegression().fit(frame, labels)
    return ModelBundle(model, "binary", [ColumnSpec("x", "numeric"), ColumnSpec("y", "numeric")], "churn",
                       class_labels=list(model.classes_))


def test_round_trip_predicts_labels_and_probabilities():
    data, sha = dump_bundle(_bundle())
    bundle = load_bundle(data, sha)
    result = bundle.predict({"y": [0.0, 1.0], "x": [0.0, 5.0]})  # column order does not matter
    assert list(result.predictions) == ["no", "yes"]
    assert result.probabilities.shape == (2, 2)
    assert np.allclose(result.probabilities.sum(axis=1), 1.0)


def test_tampered_bytes_are_never_unpickled():
    data, sha = dump_bundle(_bundle())
    with pytest.raises(DataLoss):
        load_bundle(data[:-1] + b"\x00", sha)
    with pytest.raises(InvalidArgument):
        load_bundle(data, "")


@pytest.mark.parametrize("columns, field", [({"x": [1.0]}, "inputs.y"), ({"x": [1.0], "y": [1.0], "z": [1]}, "inputs.z")])
def test_wrong_columns_name_the_column(columns, field):
    with pytest.raises(InvalidArgument) as caught:
        _bundle().predict(columns)
    assert caught.value.field == field
