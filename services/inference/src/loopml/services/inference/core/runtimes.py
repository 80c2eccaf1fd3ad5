"""Model runtimes: how a deserialized bundle is called. One small class per flavor.

`prepare` turns the validated DataFrame (or, for the numeric fast path, the request's matrix) into
what the estimator eats; `predict` runs it. Dynamic batching merges prepared inputs, so a runtime
also knows how to `concat` them and how many rows one holds.
"""

from __future__ import annotations

import ctypes
import json
import math
import threading

import numpy as np
import pandas as pd

from loopml.modelkit import ModelBundle, Prediction

NUMERIC = {"numeric", "integer", "boolean"}


class SklearnRuntime:
    """Any estimator following the scikit-learn protocol on a DataFrame (pipelines, ensembles, MLP)."""

    accepts_matrix = False

    def __init__(self, bundle: ModelBundle):
        self.bundle = bundle
        self._labels = _label_array(bundle.class_labels)

    def prepare(self, data):
        return data

    def rows(self, data) -> int:
        return len(data)

    def concat(self, parts: list):
        return pd.concat(parts, ignore_index=True)

    def slice(self, data, start: int, end: int):
        return data.iloc[start:end]

    def predict(self, data) -> Prediction:
        estimator = self.bundle.estimator
        if self.bundle.task == "regression":
            return Prediction(np.asarray(estimator.predict(data), dtype=float))
        probabilities = np.asarray(estimator.predict_proba(data), dtype=float)
        return Prediction(self._labels[probabilities.argmax(axis=1)], probabilities)


class DensePredictor:
    """A booster's prediction on a dense float32 matrix through XGBoost's C entry point
    `XGBoosterPredictFromDense` (the one `Booster.inplace_predict` calls), with its configuration
    encoded once. `inplace_predict` rebuilds its arguments in Python on every call, about 90 µs
    with the GIL held, a third of a 64-row prediction; the C call itself runs without the GIL.
    Same output as `inplace_predict(data, iteration_range=(0, iteration_end))`; thread-safe like it.

    Each thread also keeps its own proxy DMatrix (the C API's optional `m` argument), which the
    call refills with the request's matrix. Without one, XGBoost builds a new proxy on every call
    (whose context reads the cgroup CPU quota files from /sys): about 40 µs of the 170 µs a
    64-row prediction of 100 trees costs."""

    def __init__(self, booster, iteration_end: int = 0):
        from xgboost.libpath import find_lib_path

        self._booster = booster  # owns the handle
        self._handle = booster.handle
        library = ctypes.CDLL(find_lib_path()[0])  # the library xgboost loaded; own function objects
        self._predict = library.XGBoosterPredictFromDense
        self._predict.restype = ctypes.c_int
        self._last_error = library.XGBGetLastError
        self._last_error.restype = ctypes.c_char_p
        self._library = library
        self._per_thread = threading.local()  # .call: this thread's _PredictCall
        self._config = json.dumps(
            {
                "type": 0,  # values (probabilities for classifiers), not margins
                "training": False,
                "iteration_begin": 0,
                "iteration_end": iteration_end,  # 0: all trees
                "missing": float("nan"),
                "strict_shape": False,
                "cache_id": 0,
            }
        ).encode()

    def predict(self, data: np.ndarray) -> np.ndarray:
        """float64 predictions: one per row, or [rows, classes] for multi-class."""
        matrix = np.ascontiguousarray(data, dtype=np.float32)
        interface = (
            f'{{"data": [{matrix.ctypes.data}, true], "shape": [{matrix.shape[0]}, {matrix.shape[1]}], '
            f'"typestr": "<f4", "version": 3}}'
        ).encode()
        call = getattr(self._per_thread, "call", None)
        if call is None:
            call = self._per_thread.call = _PredictCall(self._library)
        status = self._predict(
            self._handle, interface, self._config, call.proxy, call.shape_ref, call.dims_ref, call.result_ref
        )
        if status != 0:
            raise ValueError(self._last_error().decode(errors="replace"))
        # The result buffer belongs to the booster (per thread) until its next call: copied now
        # (float32 -> float64). A ctypes array over the buffer is the cheapest view NumPy takes.
        out_shape = call.shape[: call.dims.value]
        count = math.prod(out_shape)
        if count == 0:
            return np.zeros(out_shape)
        values = np.frombuffer((ctypes.c_float * count).from_address(call.result.value), dtype=np.float32)
        return values.astype(np.float64).reshape(out_shape)


class _PredictCall:
    """One thread's arguments of `XGBoosterPredictFromDense` that stay the same between calls: its
    proxy DMatrix and the output parameters (with their pointers built once)."""

    __slots__ = ("_owner", "proxy", "shape", "dims", "result", "shape_ref", "dims_ref", "result_ref")

    def __init__(self, library: ctypes.CDLL):
        self._owner = _ProxyDMatrix(library)
        self.proxy = self._owner.handle
        self.shape = ctypes.POINTER(ctypes.c_uint64)()
        self.dims = ctypes.c_uint64()
        self.result = ctypes.c_void_p()
        self.shape_ref = ctypes.byref(self.shape)
        self.dims_ref = ctypes.byref(self.dims)
        self.result_ref = ctypes.byref(self.result)


class _ProxyDMatrix:
    """An XGBoost proxy DMatrix (data set per call by the predict entry point), freed with its
    owner thread's storage. `handle` is None where it cannot be created: XGBoost then makes one
    per call, as without it."""

    def __init__(self, library: ctypes.CDLL):
        self._free = library.XGDMatrixFree
        handle = ctypes.c_void_p()
        self.handle = handle if library.XGProxyDMatrixCreate(ctypes.byref(handle)) == 0 else None

    def __del__(self):
        if self.handle is not None:
            self._free(self.handle)


class NumericMatrixRuntime(SklearnRuntime):
    """An XGBoost estimator over numeric inputs only: fed a float32 matrix instead of a DataFrame
    (XGBoost's pandas path costs more than the prediction itself on small batches)."""

    accepts_matrix = True

    def prepare(self, data):
        if isinstance(data, pd.DataFrame):
            return data.to_numpy(dtype=np.float32, na_value=np.nan)
        return np.asarray(data, dtype=np.float32)

    def concat(self, parts: list):
        return np.concatenate(parts)

    def slice(self, data, start: int, end: int):
        return data[start:end]

    def __init__(self, bundle: ModelBundle):
        super().__init__(bundle)
        objective = getattr(bundle.estimator, "objective", None)
        # Objectives whose booster output is already the probability (or the regression value):
        # the booster is called directly, skipping the sklearn wrapper's per-call overhead.
        self._direct = objective in ("binary:logistic", "multi:softprob") or (
            bundle.task == "regression" and isinstance(objective, str) and objective.startswith("reg:")
        )
        self._booster = (
            DensePredictor(bundle.estimator.get_booster(), _iteration_end(bundle.estimator))
            if self._direct
            else None
        )

    def predict(self, data) -> Prediction:
        if not self._direct:
            return super().predict(data)
        output = self._booster.predict(data)
        if self.bundle.task == "regression":
            return Prediction(output)
        if output.ndim == 1:
            # Binary: the positive class wins exactly when p > 0.5, as argmax over [1 - p, p] decides
            # (ties and NaN go to the first class in both).
            return Prediction(self._labels.take(output > 0.5), _binary_probabilities(output))
        return Prediction(self._labels[output.argmax(axis=1)], output)


def _binary_probabilities(positive: np.ndarray) -> np.ndarray:
    """[rows, 2]: 1 - p, p (filled in place: half the cost of `np.column_stack`)."""
    probabilities = np.empty((len(positive), 2))
    probabilities[:, 1] = positive
    np.subtract(1.0, positive, out=probabilities[:, 0])
    return probabilities


def _iteration_end(estimator) -> int:
    """The trees the scikit-learn wrapper predicts with: up to the best iteration when early
    stopping recorded one, else all (0); a linear booster has no trees to choose from."""
    if getattr(estimator, "booster", None) == "gblinear":
        return 0
    try:
        return estimator.get_booster().best_iteration + 1
    except AttributeError:
        return 0


def _label_array(labels: list) -> np.ndarray:
    """Class labels as an array to index predictions from: int64 when every label is an integer
    (answers encode without a per-cell conversion), else the labels as Python objects."""
    integers = all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in labels)
    return np.asarray(labels, dtype=np.int64) if labels and integers else np.asarray(labels, dtype=object)


def runtime_for(bundle: ModelBundle) -> SklearnRuntime:
    module = type(bundle.estimator).__module__
    if module.startswith("xgboost") and all(c.type in NUMERIC for c in bundle.inputs):
        return NumericMatrixRuntime(bundle)
    return SklearnRuntime(bundle)
