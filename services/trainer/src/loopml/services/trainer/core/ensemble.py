"""Caruana-style ensemble selection: greedy forward selection with replacement over out-of-fold
predictions, each step adding the member that gives the best ensemble score."""

from __future__ import annotations

from collections import Counter

import numpy as np

from loopml.services.trainer.core.metrics import Metric


def select_ensemble(
    candidates: dict[str, np.ndarray],
    y: np.ndarray,
    metric: Metric,
    rounds: int = 40,
    weights: np.ndarray | None = None,
    patience: int = 8,
) -> tuple[dict[str, float], float]:
    """Weights per candidate (summing to 1) and the ensemble's score on the rows all candidates predict.

    `candidates` maps a trial id to its out-of-fold output (probabilities or predictions); `weights`
    are the rows' sample weights, if any. A round that does not improve the score does not end the
    selection at once: adding a member again shifts the weights, which can pay off a few rounds
    later. The selection ends after `patience` rounds without improvement (or `rounds` in all) and
    keeps the best ensemble seen.
    """
    ids = list(candidates)
    outputs = [candidates[i] for i in ids]
    mask = np.ones(len(y), dtype=bool)
    for output in outputs:
        mask &= ~np.isnan(output if output.ndim == 1 else output[:, 0])
    outputs = [o[mask] for o in outputs]
    target = y[mask]
    row_weights = None if weights is None else weights[mask]
    sign = 1.0 if metric.higher_is_better else -1.0
    chosen: list[int] = []
    best_chosen: list[int] = []
    total = np.zeros_like(outputs[0])
    best_score = -np.inf
    for _ in range(rounds):
        step_best, step_index = -np.inf, -1
        for index, output in enumerate(outputs):
            blend = (total + output) / (len(chosen) + 1)
            score = sign * metric.compute(target, blend, row_weights)
            if score > step_best:
                step_best, step_index = score, index
        chosen.append(step_index)
        total = total + outputs[step_index]
        if step_best > best_score:
            best_score, best_chosen = step_best, list(chosen)
        elif len(chosen) - len(best_chosen) >= patience:
            break  # no improvement for a while: keep the best ensemble seen
    counts = Counter(best_chosen)
    return {ids[i]: n / len(best_chosen) for i, n in counts.items()}, sign * best_score
