"""The artifact format: a pickled `ModelBundle`, checked against its sha256 before it is unpickled.

Pickles are executable, so `load_bundle` refuses bytes whose digest differs from the one the
registry recorded (trust model: whoever can write the registry can run code in inference).
"""

from __future__ import annotations

import hashlib
import io
import pickle
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from loopml.runtime.errors import DataLoss, InvalidArgument

#: Media type and version of the artifact bytes, recorded with each registered version.
ARTIFACT_FORMAT = "application/vnd.loopml.model-bundle.v1+pickle"

TASKS = ("binary", "multiclass", "regression")


@dataclass(frozen=True)
class ColumnSpec:
    """An input column: name and logical type (numeric, integer, boolean, categorical, datetime, text)."""

    name: str
    type: str
    nullable: bool = True


@dataclass
class Prediction:
    """Predictions for a batch of rows; `probabilities` has one column per class (classifiers only)."""

    predictions: np.ndarray
    probabilities: np.ndarray | None = None


@dataclass
class ModelBundle:
    """A trained model with everything needed to serve it.

    `estimator` follows the scikit-learn protocol on a DataFrame of the input columns: `predict`,
    and `predict_proba` for classifiers (columns ordered as `class_labels`).
    """

    estimator: Any
    task: str
    inputs: list[ColumnSpec]
    label_column: str
    class_labels: list = field(default_factory=list)
    flavor: str = "sklearn-pipeline"
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    format: str = ARTIFACT_FORMAT
    #: Importance of each input column (larger is more important), most important first.
    feature_importances: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, not {self.task!r}")

    @property
    def input_names(self) -> list[str]:
        return [c.name for c in self.inputs]

    def frame(self, columns: dict[str, list] | pd.DataFrame) -> pd.DataFrame:
        """The inputs as a DataFrame in the model's column order; InvalidArgument names a bad column."""
        data = columns if isinstance(columns, pd.DataFrame) else pd.DataFrame(columns)
        missing = [n for n in self.input_names if n not in data.columns]
        if missing:
            needs = f"missing input column (model needs {self.input_names})"
            raise InvalidArgument(f"inputs.{missing[0]}", needs)
        extra = [n for n in data.columns if n not in self.input_names]
        if extra:
            takes = f"unknown input column (model takes {self.input_names})"
            raise InvalidArgument(f"inputs.{extra[0]}", takes)
        return data[self.input_names]

    def predict(self, columns: dict[str, list] | pd.DataFrame) -> Prediction:
        frame = self.frame(columns)
        if self.task == "regression":
            return Prediction(np.asarray(self.estimator.predict(frame), dtype=float))
        probabilities = np.asarray(self.estimator.predict_proba(frame), dtype=float)
        labels = np.asarray(self.class_labels, dtype=object)
        return Prediction(labels[probabilities.argmax(axis=1)], probabilities)


def dump_bundle(bundle: ModelBundle) -> tuple[bytes, str]:
    """The artifact bytes of `bundle` and their sha256 (hex)."""
    buffer = io.BytesIO()
    pickle.dump(bundle, buffer, protocol=5)
    data = buffer.getvalue()
    return data, hashlib.sha256(data).hexdigest()


def load_bundle(data: bytes, expected_sha256: str) -> ModelBundle:
    """Unpickle artifact bytes, but only when their sha256 is the one the registry recorded."""
    if not expected_sha256:
        raise InvalidArgument("sha256", "an artifact is only loaded against a recorded sha256")
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256.lower():
        raise DataLoss(f"artifact sha256 {actual} does not match the recorded {expected_sha256}")
    bundle = pickle.loads(data)  # noqa: S301 - integrity checked above; see the trust model
    if not isinstance(bundle, ModelBundle) or bundle.format != ARTIFACT_FORMAT:
        raise InvalidArgument("artifact", f"not a loopml model bundle ({ARTIFACT_FORMAT})")
    return bundle
