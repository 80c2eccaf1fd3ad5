"""Preprocessing steps that trained pipelines pickle (so they must import without the trainer)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin


class CategoryAsString(TransformerMixin, BaseEstimator):
    """Turns categorical cells into strings, missing cells into `fill_value` (encoders need one type)."""

    def __init__(self, fill_value: str = "__missing__"):
        self.fill_value = fill_value

    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1] if np.ndim(X) == 2 else 1
        return self

    def transform(self, X):
        frame = pd.DataFrame(X).astype(object)
        return frame.where(frame.notna(), self.fill_value).astype(str).to_numpy()

    def get_feature_names_out(self, input_features=None):
        return np.asarray(input_features if input_features is not None else [], dtype=object)


class DatetimeExpander(TransformerMixin, BaseEstimator):
    """Expands each date-time column into numeric parts: year, month, day, weekday, hour, epoch days."""

    PARTS = ("year", "month", "day", "weekday", "hour", "epoch_days")

    def fit(self, X, y=None):
        frame = pd.DataFrame(X)
        self.columns_ = [str(c) for c in frame.columns]
        return self

    def transform(self, X):
        frame = pd.DataFrame(X)
        out = []
        for column in frame.columns:
            values = pd.to_datetime(frame[column], errors="coerce", utc=True)
            epoch = (values - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds() / 86400.0
            out += [
                values.dt.year,
                values.dt.month,
                values.dt.day,
                values.dt.day_of_week,
                values.dt.hour,
                epoch,
            ]
        return (
            np.column_stack([np.asarray(v, dtype=float) for v in out]) if out else np.empty((len(frame), 0))
        )

    def get_feature_names_out(self, input_features=None):
        names = input_features if input_features is not None else self.columns_
        return np.asarray([f"{c}_{p}" for c in names for p in self.PARTS], dtype=object)


class TextColumn(TransformerMixin, BaseEstimator):
    """Selects one column as a 1-D array of strings (missing -> ""), the input TF-IDF expects."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        column = pd.DataFrame(X).iloc[:, 0].astype(object)
        return column.where(column.notna(), "").astype(str).to_numpy()
