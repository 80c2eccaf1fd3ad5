"""Training rows from the prediction log: each logged row that received feedback, its inputs with
the ground truth as the label (what the closed loop retrains on when asked for
RETRAIN_DATA_PREDICTIONS_WITH_FEEDBACK)."""

from __future__ import annotations

from typing import Any

from loopml.runtime.errors import FailedPrecondition


def labelled_rows(records: list[dict[str, Any]], columns: list[str], label: str) -> dict[str, list]:
    """`columns` of every row with feedback, plus `label` holding its actual value. A record
    without one of the columns (an older model signature) gives missing cells there."""
    table: dict[str, list] = {name: [] for name in [*columns, label]}
    for record in records:
        inputs = record["inputs"]
        for row, (actual, _business) in sorted(record["feedback"].items()):
            for name in columns:
                cells = inputs.get(name)
                table[name].append(cells[row] if cells is not None else None)
            table[label].append(actual)
    if not table[label]:
        raise FailedPrecondition("no logged prediction of the model has feedback yet")
    return table
