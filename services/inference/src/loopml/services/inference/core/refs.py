"""How a model is addressed (name + alias, version or latest) and what an address resolves to."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_ALIAS = "production"


@dataclass(frozen=True)
class ModelRef:
    """A model by name plus exactly one selector; none given means the alias `production`."""

    name: str
    alias: str = ""
    version: int = 0
    latest: bool = False

    def __post_init__(self):
        if not self.alias and not self.version and not self.latest:
            object.__setattr__(self, "alias", DEFAULT_ALIAS)

    def __str__(self) -> str:
        if self.version:
            return f"{self.name}@v{self.version}"
        if self.latest:
            return f"{self.name}@latest"
        return f"{self.name}@{self.alias}"


@dataclass(frozen=True)
class ResolvedVersion:
    """One concrete, READY model version and its artifact's integrity data."""

    name: str
    version: int
    sha256: str
    size_bytes: int = 0
    flavor: str = ""


@dataclass(frozen=True)
class AliasMoved:
    """The registry moved (version > 0) or deleted (version == 0) an alias."""

    name: str
    alias: str
    version: int


@dataclass(frozen=True)
class VersionReady:
    """A new version of a model became READY (what `latest` follows)."""

    name: str
    version: int
