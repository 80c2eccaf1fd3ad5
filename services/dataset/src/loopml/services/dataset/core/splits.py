"""Split assignment: one part code per row (0 train, 1 validation, 2 test), deterministic per seed."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.runtime.errors import InvalidArgument
from loopml.services.dataset.core.model import SplitSpec, SplitStrategy

_TOLERANCE = 1e-9


def check_ratios(spec: SplitSpec) -> None:
    ratios = {
        "train_ratio": spec.train_ratio,
        "validation_ratio": spec.validation_ratio,
        "test_ratio": spec.test_ratio,
    }
    for name, value in ratios.items():
        if value < 0 or value > 1:
            raise InvalidArgument(f"spec.{name}", f"must be between 0 and 1, got {value}")
    total = sum(ratios.values())
    if abs(total - 1.0) > _TOLERANCE:
        raise InvalidArgument(
            "spec.train_ratio", f"train, validation and test ratios add up to {total:g}, not 1"
        )
    if spec.train_ratio == 0:
        raise InvalidArgument("spec.train_ratio", "must be above 0")


def _counts(n: int, spec: SplitSpec) -> tuple[int, int]:
    n_train = int(round(n * spec.train_ratio))
    n_val = int(round(n * spec.validation_ratio))
    n_val = min(n_val, n - n_train)
    return n_train, n_val


def _assign_order(order: np.ndarray, spec: SplitSpec) -> np.ndarray:
    """Rows in `order`: the first go to train, then validation, the rest to test."""
    codes = np.full(len(order), 2, dtype=np.int8)
    n_train, n_val = _counts(len(order), spec)
    codes[order[:n_train]] = 0
    codes[order[n_train : n_train + n_val]] = 1
    return codes


def assign(spec: SplitSpec, column: pa.ChunkedArray | None, n: int) -> np.ndarray:
    """Part codes for `n` rows; `column` is the stratify, group or time column (None for random)."""
    rng = np.random.default_rng(spec.seed)
    if spec.strategy == SplitStrategy.RANDOM or column is None:
        return _assign_order(rng.permutation(n), spec)
    if spec.strategy == SplitStrategy.STRATIFIED:
        codes = np.empty(n, dtype=np.int8)
        classes = (
            pc.dictionary_encode(column.combine_chunks()).indices.fill_null(-1).to_numpy(zero_copy_only=False)
        )
        for cls in np.unique(classes):
            rows = np.flatnonzero(classes == cls)
            sub = _assign_order(rng.permutation(len(rows)), spec)
            codes[rows] = sub
        return codes
    if spec.strategy == SplitStrategy.GROUP:
        groups = (
            pc.dictionary_encode(column.combine_chunks()).indices.fill_null(-1).to_numpy(zero_copy_only=False)
        )
        unique, inverse, sizes = np.unique(groups, return_inverse=True, return_counts=True)
        order = rng.permutation(len(unique))
        cumulative = np.cumsum(sizes[order]) / n
        part_of_group = np.full(len(unique), 2, dtype=np.int8)
        train_end = spec.train_ratio
        val_end = spec.train_ratio + spec.validation_ratio
        # a group goes to the part where its middle row falls in the shuffled cumulative order
        middle = cumulative - sizes[order] / (2 * n)
        part_of_group[order[middle < val_end]] = 1
        part_of_group[order[middle < train_end]] = 0
        return part_of_group[inverse]
    # TIME: oldest rows train, newest test (stable for ties, so deterministic)
    values = column.combine_chunks()
    if pa.types.is_timestamp(values.type) or pa.types.is_date(values.type):
        values = values.cast(pa.timestamp("us")).cast(pa.int64())
    order = np.asarray(
        pc.array_sort_indices(values, null_placement="at_start").to_numpy(zero_copy_only=False)
    )
    return _assign_order(order, spec)


def check_not_empty(codes: np.ndarray, spec: SplitSpec) -> tuple[int, int, int]:
    counts = tuple(int((codes == i).sum()) for i in range(3))
    wanted = (spec.train_ratio, spec.validation_ratio, spec.test_ratio)
    for part, count, ratio in zip(
        ("train_ratio", "validation_ratio", "test_ratio"), counts, wanted, strict=False
    ):
        if ratio > 0 and count == 0:
            raise InvalidArgument(f"spec.{part}", f"leaves the {part.removesuffix('_ratio')} part empty")
    return counts
