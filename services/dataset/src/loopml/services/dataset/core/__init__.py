"""The dataset service's domain core (no grpc, no protobuf)."""

from loopml.services.dataset.core.lineage import LineageChecker, NoLineage
from loopml.services.dataset.core.service import DatasetCore, Download, Limits, Preview

__all__ = ["DatasetCore", "Download", "LineageChecker", "Limits", "NoLineage", "Preview"]
