"""The default portfolio: configurations (data, in portfolio.json) tried before the sampler proposes."""

from __future__ import annotations

import json
from pathlib import Path

from loopml.services.trainer.core.space import SearchSpace

PORTFOLIO_FILE = Path(__file__).with_name("portfolio.json")


def load_portfolio(path: Path = PORTFOLIO_FILE) -> list[dict]:
    return json.loads(path.read_text())["configs"]


def portfolio_for(task: str, space: SearchSpace, path: Path = PORTFOLIO_FILE) -> list[tuple[str, dict]]:
    """(family, params) of the portfolio entries that fit the task and the searched families.

    Parameters the space does not search (e.g. TF-IDF size when there is no text) are dropped;
    ones the entry lacks are left to the sampler.
    """
    configs = []
    for entry in load_portfolio(path):
        family = entry["family"]
        if task not in entry["tasks"] or family not in space.families:
            continue
        names = {p.name for p in space.families[family]}
        configs.append((family, {k: v for k, v in entry["params"].items() if k in names}))
    return configs
