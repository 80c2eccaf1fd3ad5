"""Search spaces as data: each parameter is a plain, JSON-serialisable description.

A `SearchSpace` maps a model family to its parameters (preprocessing and model, named in
scikit-learn's `step__param` style). Optuna parameter names are prefixed by the family
(`xgboost:model__max_depth`) so families never share a distribution.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

FAMILY_PARAM = "family"


@dataclass(frozen=True)
class Param:
    """One searched parameter: kind "float", "int" or "categorical"."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()

    def suggest(self, trial, prefix: str):
        key = f"{prefix}:{self.name}"
        if self.kind == "float":
            return trial.suggest_float(key, self.low, self.high, log=self.log)
        if self.kind == "int":
            return trial.suggest_int(key, int(self.low), int(self.high), log=self.log)
        return trial.suggest_categorical(key, list(self.choices))

    def grid(self, points: int = 3) -> list:
        if self.kind == "categorical":
            return list(self.choices)
        if points == 1 or self.low == self.high:
            return [self.low]
        if self.log:
            import math

            lo, hi = math.log(self.low), math.log(self.high)
            values = [math.exp(lo + (hi - lo) * i / (points - 1)) for i in range(points)]
        else:
            values = [self.low + (self.high - self.low) * i / (points - 1) for i in range(points)]
        values = [min(max(v, self.low), self.high) for v in values]  # no rounding past the bounds
        return sorted({int(round(v)) for v in values}) if self.kind == "int" else values


def float_param(name, low, high, log=False) -> Param:
    return Param(name, "float", float(low), float(high), log)


def int_param(name, low, high, log=False) -> Param:
    return Param(name, "int", int(low), int(high), log)


def choice(name, *choices) -> Param:
    return Param(name, "categorical", choices=tuple(choices))


@dataclass
class SearchSpace:
    """Per family, its parameters. Families are tried in the order given."""

    families: dict[str, list[Param]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {f: [asdict(p) for p in params] for f, params in self.families.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchSpace:
        return cls(
            {
                f: [Param(**{**p, "choices": tuple(p.get("choices", ()))}) for p in ps]
                for f, ps in data.items()
            }
        )

    def sample(self, trial) -> tuple[str, dict[str, Any]]:
        """Draw a family and its parameters through an Optuna trial (fixed values when enqueued)."""
        family = trial.suggest_categorical(FAMILY_PARAM, list(self.families))
        return family, {p.name: p.suggest(trial, family) for p in self.families[family]}

    @staticmethod
    def optuna_params(family: str, params: dict[str, Any]) -> dict[str, Any]:
        """The Optuna parameter dict of a configuration (to enqueue it)."""
        return {FAMILY_PARAM: family, **{f"{family}:{k}": v for k, v in params.items()}}

    @staticmethod
    def from_optuna(params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        family = params.get(FAMILY_PARAM, "")
        return family, {k.split(":", 1)[1]: v for k, v in params.items() if ":" in k}

    def grid_space(self, points: int = 2) -> dict[str, list]:
        """An Optuna GridSampler space over every family (few points per numeric parameter)."""
        grid: dict[str, list] = {FAMILY_PARAM: list(self.families)}
        for family, params in self.families.items():
            for p in params:
                grid[f"{family}:{p.name}"] = p.grid(points)
        return grid
