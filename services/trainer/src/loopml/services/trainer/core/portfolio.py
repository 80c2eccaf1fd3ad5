"""The default portfolio: configurations (data, in portfolio.json) tried before the sampler proposes."""

from __future__ import annotations

import json
from pathlib import Path

from loopml.services.trainer.core.space import SearchSpace

PORTFOLIO_FILE = Path(__file__).with_name("portfolio.json")

#: On data that is large for the budget these go first (quick to fit per row, strong on tabular
#: data), defaults before the others ...
QUICK_ON_LARGE_DATA = ("hist_gradient_boosting", "xgboost")
#: ... and these last: an MLP fit took about 17 s on 32k rows (diamonds), k-NN predicts slowly.
SLOW_ON_LARGE_DATA = ("mlp", "knn")


def load_portfolio(path: Path = PORTFOLIO_FILE) -> list[dict]:
    return json.loads(path.read_text())["configs"]


def _large_data_rank(entry: dict) -> int:
    if entry["family"] in QUICK_ON_LARGE_DATA:
        return 0 if entry.get("source") == "default" else 1
    return 3 if entry["family"] in SLOW_ON_LARGE_DATA else 2


def portfolio_for(
    task: str, space: SearchSpace, path: Path = PORTFOLIO_FILE, large_data: bool = False
) -> list[tuple[str, dict]]:
    """(family, params) of the portfolio entries that fit the task and the searched families.

    Parameters the space does not search (e.g. TF-IDF size when there is no text) are dropped;
    ones the entry lacks are left to the sampler. With `large_data` (many rows for the time
    budget, so only a few trials will run) the boosting defaults go first and the slow families
    last; otherwise the file's order holds.
    """
    entries = [e for e in load_portfolio(path) if task in e["tasks"] and e["family"] in space.families]
    if large_data:
        entries.sort(key=_large_data_rank)  # stable: the file's order within a rank
    configs = []
    for entry in entries:
        names = {p.name for p in space.families[entry["family"]]}
        configs.append((entry["family"], {k: v for k, v in entry["params"].items() if k in names}))
    return configs
