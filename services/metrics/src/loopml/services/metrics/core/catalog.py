"""What the metrics core needs of the registry, as a narrow interface (gRPC implementation in
`loopml.services.metrics.remote`). Any method may raise Unavailable when the registry is down;
callers then go on without it and say so."""

from __future__ import annotations

from typing import Protocol

from loopml.services.metrics.core.model import VersionInfo


class ModelCatalog(Protocol):
    def version(self, model_name: str, version: int) -> VersionInfo:
        """The version's metadata (0: the newest version). NotFound for an unknown model or version."""
        ...

    def resolve_alias(self, model_name: str, alias: str) -> VersionInfo:
        """The version `alias` points at. NotFound when the model or alias is unknown."""
        ...

    def set_alias(self, model_name: str, alias: str, version: int, reason: str) -> None: ...
