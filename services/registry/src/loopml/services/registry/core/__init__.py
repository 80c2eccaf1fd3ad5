"""The registry's domain: models, versions, aliases, events. Imports neither grpc nor *_pb2."""

from loopml.services.registry.core.events import EventFeed
from loopml.services.registry.core.model import (
    ALIAS_PATTERN,
    MODEL_NAME_PATTERN,
    AliasChange,
    Event,
    EventType,
    Model,
    ModelVersion,
    Selector,
    VersionSpec,
    VersionStatus,
)
from loopml.services.registry.core.registry import Registry

__all__ = [
    "ALIAS_PATTERN",
    "MODEL_NAME_PATTERN",
    "AliasChange",
    "Event",
    "EventFeed",
    "EventType",
    "Model",
    "ModelVersion",
    "Registry",
    "Selector",
    "VersionSpec",
    "VersionStatus",
]
