"""The task plugin interface. The engine only talks to this: a new kind of problem (image
classification with transfer learning, say) is a new plugin, not a new engine.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from loopml.services.trainer.core.space import SearchSpace


@dataclass
class Problem:
    """What the plugin knows about the data: task, feature columns and their kinds, classes."""

    task: str  # binary | multiclass | regression
    label: str
    features: dict[str, str]  # column -> kind (numeric, integer, boolean, categorical, datetime, text)
    classes: list = field(default_factory=list)
    n_rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "label": self.label,
            "features": self.features,
            "classes": list(self.classes),
            "n_rows": self.n_rows,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Problem:
        return cls(**data)


class Task(abc.ABC):
    """A family of learning problems: its model families, their search space, how to build one."""

    name: str = ""

    @abc.abstractmethod
    def families(self, problem: Problem) -> list[str]:
        """Model families that fit the problem, in default order."""

    @abc.abstractmethod
    def space(self, problem: Problem, families: list[str]) -> SearchSpace:
        """The search space over `families`."""

    @abc.abstractmethod
    def build(self, problem: Problem, family: str, params: dict[str, Any], seed: int):
        """An unfitted estimator (scikit-learn protocol) for one configuration."""

    @abc.abstractmethod
    def features(self, problem: Problem, frame: pd.DataFrame) -> pd.DataFrame:
        """The model's input frame from a data frame (feature columns, in order)."""

    def feature_importances(
        self, problem: Problem, estimator, frame: pd.DataFrame, y, seconds: float | None = None
    ) -> dict[str, float]:
        """Importance per input column, computed in about `seconds` at most (None: no limit); empty
        when the plugin cannot tell or has no time."""
        return {}

    def fit(self, estimator, family: str, frame: pd.DataFrame, y, sample_weight=None):
        """Fit one candidate on the rows, with their sample weights when given (None: unweighted)."""
        if sample_weight is None:
            return estimator.fit(frame, y)
        return estimator.fit(frame, y, sample_weight=sample_weight)

    #: Families whose training can report intermediate scores (boosting rounds, epochs).
    staged_families: tuple[str, ...] = ()

    def fit_in_stages(
        self,
        estimator,
        family: str,
        frame: pd.DataFrame,
        y,
        valid_frame: pd.DataFrame,
        on_stage,
        predict,
        sample_weight=None,
    ) -> int | None:
        """Fit `estimator` (of a staged family), calling `on_stage(done, validation output)` at a few
        checkpoints; it returns True to stop. Returns the rounds/epochs done when stopped, else None."""
        raise NotImplementedError(f"{self.name} has no staged families")
