"""Who uses a dataset version: the check DeleteDataset makes before removing data.

The registry owns model lineage; the service asks it through a `LineageChecker`. The gRPC
implementation lives in `loopml.services.dataset.registry_lineage`; tests and embedded set-ups
without a registry pass another one.
"""

from __future__ import annotations

from typing import Protocol


class LineageChecker(Protocol):
    def models_using(self, dataset_id: str, version: int) -> list[str]:
        """Names ("model@version") of registered model versions trained on the dataset version
        (`version` 0: on any version). Raises `Unavailable` when it cannot tell."""


class NoLineage:
    """A checker for a deployment without a model registry: nothing is ever in use."""

    def models_using(self, dataset_id: str, version: int) -> list[str]:
        return []
