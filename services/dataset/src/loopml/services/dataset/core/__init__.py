"""The dataset service's domain core (no grpc, no protobuf)."""

from loopml.services.dataset.core.lineage import LineageChecker, NoLineage
from loopml.services.dataset.core.service import DatasetCore, Download, Preview
from loopml.services.dataset.core.uploads import Limits

__all__ = ["DatasetCore", "Download", "LineageChecker", "Limits", "NoLineage", "Preview"]
