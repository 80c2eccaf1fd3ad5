"""The closed loop's last step, as an interface: retrain the serving model and maybe promote it.

The gRPC implementation (`loopml.services.metrics.remote.GrpcRetrainer`) drives the trainer,
dataset and registry services; the alert evaluator only sees this interface.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class RetrainRequest:
    model_name: str
    alias: str
    data: str  # "newest_dataset_version" or "predictions_with_feedback"
    min_improvement: float
    time_budget_s: float  # 0: the original search's budget
    alert_id: str = ""


@dataclass
class RetrainOutcome:
    search_id: str = ""
    new_version: int = 0
    metric: str = ""
    serving_score: float = 0.0
    candidate_score: float = 0.0
    promoted: bool = False
    detail: str = ""


class Retrainer(Protocol):
    def retrain(self, request: RetrainRequest) -> RetrainOutcome:
        """Run the whole retraining (blocking) and return what happened; raise a LoopmlError
        (e.g. Unavailable, FailedPrecondition) when it could not run."""
        ...
