"""`Registry`: every use case of the registry over its database and the object store.

Every change runs in one transaction that also appends its event (see rows.append_event).
The use cases are grouped by subject, one module each; `Registry` puts them together.
"""

from __future__ import annotations

from loopml.services.registry.core.aliases import AliasOperations
from loopml.services.registry.core.models import ModelOperations
from loopml.services.registry.core.resolving import ResolveOperations
from loopml.services.registry.core.versions import VersionOperations


class Registry(ModelOperations, VersionOperations, AliasOperations, ResolveOperations):
    """The registry (see `RegistryBase` for the constructor)."""
