"""The inference domain: model sources, artifact cache, signature checks, batching, hot reload.

Imports neither grpc nor generated protobuf modules.
"""

from loopml.services.inference.core.batching import BatchingPolicy
from loopml.services.inference.core.cache import ArtifactCache
from loopml.services.inference.core.manager import ModelManager, PredictResult
from loopml.services.inference.core.predlog import PredictionLog, PredictionRecord, PredictionSink
from loopml.services.inference.core.refs import (
    DEFAULT_ALIAS,
    AliasMoved,
    ModelRef,
    ResolvedVersion,
    VersionReady,
)
from loopml.services.inference.core.signature import InputBatch, InputColumn, batch_from_lists, build_frame
from loopml.services.inference.core.source import InProcessModelSource, ModelSource
from loopml.services.inference.core.versions import Deployment, ServedVersion, VersionInfo

__all__ = [
    "DEFAULT_ALIAS",
    "AliasMoved",
    "ArtifactCache",
    "BatchingPolicy",
    "Deployment",
    "InProcessModelSource",
    "InputBatch",
    "InputColumn",
    "ModelManager",
    "ModelRef",
    "ModelSource",
    "PredictResult",
    "PredictionLog",
    "PredictionRecord",
    "PredictionSink",
    "ResolvedVersion",
    "ServedVersion",
    "VersionInfo",
    "VersionReady",
    "batch_from_lists",
    "build_frame",
]
