"""Bearer tokens with roles, and the one table saying which role each RPC needs.

Roles: `read` (look, never change), `predict` (ask models for predictions), `admin` (everything).
The role an RPC needs follows from its name, so a new RPC is classified the day it is added:

    Get*, List*, Preview*, Query*, Download*, Watch*, Resolve*          -> read
    Predict, PredictStream, ModelInfer                                  -> predict
    ServerLive, ServerReady, ServerMetadata, ModelReady, ModelMetadata  -> read or predict
    anything else (Create*, Delete*, Upload*, Record*, Load*, ...)      -> admin

`admin` may call everything. Health checks and reflection need no token at all.
"""

from __future__ import annotations

from collections.abc import Iterable

READ, PREDICT, ADMIN = "read", "predict", "admin"
ROLES = (READ, PREDICT, ADMIN)

_READ_PREFIXES = ("Get", "List", "Preview", "Query", "Download", "Watch", "Resolve")
_PREDICT_NAMES = frozenset({"Predict", "PredictStream", "ModelInfer"})
#: Open Inference Protocol liveness and metadata: prediction clients need them, and so do readers.
_METADATA_NAMES = frozenset({"ServerLive", "ServerReady", "ServerMetadata", "ModelReady", "ModelMetadata"})


def roles_allowed(method: str) -> frozenset[str]:
    """Roles that may call `method` (a full "/pkg.Service/Name" path or the bare RPC name)."""
    name = method.rsplit("/", 1)[-1]
    if name in _PREDICT_NAMES:
        return frozenset({PREDICT, ADMIN})
    if name in _METADATA_NAMES:
        return frozenset({READ, PREDICT, ADMIN})
    if name.startswith(_READ_PREFIXES):
        return frozenset({READ, ADMIN})
    return frozenset({ADMIN})


def parse_token_entries(entries: Iterable[str]) -> dict[str, str]:
    """`role:token` entries (a bare token is admin; blanks and `#` comments skipped) -> {token: role}.

    Raises ValueError naming the entry's position (never the token) for an unknown role.
    """
    tokens: dict[str, str] = {}
    for position, raw in enumerate(entries, start=1):
        entry = raw.split("#", 1)[0].strip()
        if not entry:
            continue
        role, sep, token = entry.partition(":")
        if not sep:
            role, token = ADMIN, entry
        role, token = role.strip(), token.strip()
        if role not in ROLES:
            expected = ", ".join(ROLES)
            raise ValueError(f"token entry {position}: unknown role {role!r} (expected one of {expected})")
        if not token:
            raise ValueError(f"token entry {position}: empty token")
        tokens[token] = role
    return tokens
