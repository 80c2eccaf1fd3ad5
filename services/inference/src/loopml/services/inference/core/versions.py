"""One loaded model version (`ServedVersion`) and one served model with its traffic split (`Deployment`)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from loopml.modelkit import ModelBundle, Prediction
from loopml.services.inference.core import telemetry
from loopml.services.inference.core.batching import BatchingPolicy, DynamicBatcher
from loopml.services.inference.core.refs import ModelRef, ResolvedVersion
from loopml.services.inference.core.runtimes import runtime_for

READY, LOADING, FAILED, UNLOADING = "READY", "LOADING", "FAILED", "UNLOADING"


class ServedVersion:
    """A deserialized, smoke-tested model version. Requests `acquire` it for their whole life, so a
    retired version (swapped out or unloaded) finishes its in-flight requests before it closes."""

    def __init__(
        self,
        resolved: ResolvedVersion,
        bundle: ModelBundle,
        memory_bytes: int,
        policy: BatchingPolicy,
        busy_threads: Callable[[], int] | None = None,
    ):
        self.name = resolved.name
        self.version = resolved.version
        self.sha256 = resolved.sha256
        self.bundle = bundle
        self.runtime = runtime_for(bundle)
        self.memory_bytes = memory_bytes
        self.load_time = datetime.now(UTC)
        self.state = READY
        self._idle = threading.Condition()
        self._inflight = 0
        self._retired = False
        labels = (self.name, str(self.version))
        self.metrics = telemetry.VersionMetrics(*labels)
        self._batcher = DynamicBatcher(self.runtime, policy, labels, busy_threads) if policy.enabled else None

    def acquire(self) -> bool:
        with self._idle:
            if self._retired:
                return False
            self._inflight += 1
            return True

    def release(self) -> None:
        with self._idle:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.notify_all()

    def predict(self, data) -> Prediction:
        """Predicts a prepared input (see `runtime.prepare`)."""
        if self._batcher is not None:
            return self._batcher.predict(data)
        return self.runtime.predict(data)

    def retire(self, wait_s: float = 0.0) -> None:
        """Refuses new requests; the in-flight ones finish on this version (waits up to `wait_s`
        for them). Nothing else to close: batching runs on the requests' own threads."""
        with self._idle:
            self._retired = True
            self.state = UNLOADING
            if wait_s:
                self._idle.wait_for(lambda: self._inflight == 0, timeout=wait_s)


@dataclass
class VersionInfo:
    version: int
    weight: float
    state: str
    sha256: str = ""
    memory_bytes: int = 0
    load_time: datetime | None = None
    last_error: str = ""


class Deployment:
    """A model as loaded under one reference: a primary version and an optional weighted canary."""

    def __init__(self, ref: ModelRef, primary: ServedVersion, policy: BatchingPolicy):
        self.ref = ref
        self.primary = primary
        self.canary: ServedVersion | None = None
        self.canary_weight = 0.0
        self.policy = policy
        self.last_used = time.monotonic()
        self._last_used_epoch = time.time()
        #: The last failed reload: (version, error); cleared by a successful one.
        self.failed: tuple[int, str] | None = None

    def pick(self, rng: random.Random) -> ServedVersion:
        canary = self.canary
        if canary is not None and rng.random() < self.canary_weight:
            return canary
        return self.primary

    def touch(self) -> None:
        # Runs on every request: two clock reads; the datetime is built only when asked for.
        self.last_used = time.monotonic()
        self._last_used_epoch = time.time()

    @property
    def last_used_time(self) -> datetime:
        return datetime.fromtimestamp(self._last_used_epoch, UTC)

    @property
    def memory_bytes(self) -> int:
        return self.primary.memory_bytes + (self.canary.memory_bytes if self.canary else 0)

    @property
    def bundle(self) -> ModelBundle:
        return self.primary.bundle

    def served(self) -> list[ServedVersion]:
        return [self.primary] + ([self.canary] if self.canary is not None else [])

    def versions(self) -> list[VersionInfo]:
        weight = self.canary_weight if self.canary is not None else 0.0
        infos = [
            VersionInfo(
                self.primary.version,
                1.0 - weight,
                self.primary.state,
                self.primary.sha256,
                self.primary.memory_bytes,
                self.primary.load_time,
            )
        ]
        if self.canary is not None:
            infos.append(
                VersionInfo(
                    self.canary.version,
                    weight,
                    self.canary.state,
                    self.canary.sha256,
                    self.canary.memory_bytes,
                    self.canary.load_time,
                )
            )
        if self.failed is not None:
            infos.append(VersionInfo(self.failed[0], 0.0, FAILED, last_error=self.failed[1]))
        return infos
