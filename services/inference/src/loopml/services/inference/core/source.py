"""Where models come from: the `ModelSource` interface, and an in-process implementation.

The service uses the registry over gRPC (`loopml.services.inference.registry_source`); the
in-process source serves bundles handed to it directly (embedded use, tests of the core). Both
obey the same contract:

- `resolve(ref)` returns a READY version or raises NotFound (unknown model, alias or version) /
  FailedPrecondition (version not READY);
- `fetch(resolved)` returns the artifact bytes (the caller verifies the sha256);
- `watch(stop)` yields `AliasMoved` / `VersionReady` events until `stop` is set; it may end early
  (the caller watches again).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Protocol

from loopml.modelkit import ModelBundle, dump_bundle
from loopml.runtime.errors import NotFound
from loopml.services.inference.core.refs import AliasMoved, ModelRef, ResolvedVersion, VersionReady

Event = AliasMoved | VersionReady


class ModelSource(Protocol):
    def resolve(self, ref: ModelRef) -> ResolvedVersion: ...

    def fetch(self, resolved: ResolvedVersion) -> bytes: ...

    def watch(self, stop: threading.Event) -> Iterator[Event]: ...


class InProcessModelSource:
    """Models held in memory as artifact bytes; aliases move with `set_alias` (events follow)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._artifacts: dict[tuple[str, int], tuple[bytes, str]] = {}
        self._aliases: dict[tuple[str, str], int] = {}
        self._watchers: list[queue.SimpleQueue] = []

    def add_version(self, name: str, bundle: ModelBundle | bytes, *, sha256: str = "") -> int:
        """Stores a new version (bundle, or raw bytes with their claimed sha256); returns its number."""
        data, digest = (bundle, sha256) if isinstance(bundle, bytes) else dump_bundle(bundle)
        with self._lock:
            version = 1 + max((v for (n, v) in self._artifacts if n == name), default=0)
            self._artifacts[(name, version)] = (data, digest)
        self._publish(VersionReady(name, version))
        return version

    def set_alias(self, name: str, alias: str, version: int) -> None:
        with self._lock:
            if (name, version) not in self._artifacts:
                raise NotFound("model version", f"{name}/{version}")
            self._aliases[(name, alias)] = version
        self._publish(AliasMoved(name, alias, version))

    @property
    def watcher_count(self) -> int:
        with self._lock:
            return len(self._watchers)

    def resolve(self, ref: ModelRef) -> ResolvedVersion:
        with self._lock:
            versions = sorted(v for (n, v) in self._artifacts if n == ref.name)
            if not versions:
                raise NotFound("model", ref.name)
            if ref.version:
                version = ref.version
                if version not in versions:
                    raise NotFound("model version", f"{ref.name}/{version}")
            elif ref.latest:
                version = versions[-1]
            else:
                version = self._aliases.get((ref.name, ref.alias), 0)
                if not version:
                    raise NotFound("alias", f"{ref.name}@{ref.alias}")
            data, digest = self._artifacts[(ref.name, version)]
        return ResolvedVersion(ref.name, version, digest, len(data))

    def fetch(self, resolved: ResolvedVersion) -> bytes:
        with self._lock:
            found = self._artifacts.get((resolved.name, resolved.version))
        if found is None:
            raise NotFound("model version", f"{resolved.name}/{resolved.version}")
        return found[0]

    def watch(self, stop: threading.Event) -> Iterator[Event]:
        events: queue.SimpleQueue = queue.SimpleQueue()
        with self._lock:
            self._watchers.append(events)
        try:
            while not stop.is_set():
                try:
                    yield events.get(timeout=0.2)
                except queue.Empty:
                    continue
        finally:
            with self._lock:
                self._watchers.remove(events)

    def _publish(self, event: Event) -> None:
        with self._lock:
            watchers = list(self._watchers)
        for watcher in watchers:
            watcher.put(event)
