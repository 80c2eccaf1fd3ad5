"""The model manager: loads models through a `ModelSource`, keeps them under a memory cap, follows
alias moves (hot reload), splits traffic, and answers predictions.

A model's memory is measured when it loads: the growth of the process's resident memory while it
is deserialized and smoke-tested (loads are serialized for that), at least its artifact's size.

Thread-safe. Loading (download, verify, unpickle, smoke prediction) happens outside the manager's
lock; swapping a new version in is one attribute assignment under it, so every request runs on
exactly one version from start to end.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from loopml.modelkit import ModelBundle, Prediction, load_bundle
from loopml.runtime.errors import (
    DataLoss,
    FailedPrecondition,
    InvalidArgument,
    LoopmlError,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from loopml.runtime.grpcserver.interceptors import new_request_id  # uuid4().hex, cheaper
from loopml.services.inference.core import telemetry
from loopml.services.inference.core.batching import BatchingPolicy
from loopml.services.inference.core.cache import ArtifactCache
from loopml.services.inference.core.predlog import PredictionLog, PredictionRecord
from loopml.services.inference.core.refs import AliasMoved, ModelRef, ResolvedVersion, VersionReady
from loopml.services.inference.core.runtimes import runtime_for
from loopml.services.inference.core.signature import InputBatch, build_frame, smoke_frame
from loopml.services.inference.core.source import ModelSource
from loopml.services.inference.core.versions import Deployment, ServedVersion

log = logging.getLogger("loopml.inference")


def resident_bytes() -> int:
    """This process's resident memory (Linux /proc); 0 where that is not available."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


@dataclass
class PredictResult:
    request_id: str
    model_name: str
    model_version: int
    prediction: Prediction
    bundle: ModelBundle
    latency_s: float


class ModelManager:
    def __init__(
        self,
        source: ModelSource,
        cache: ArtifactCache,
        *,
        memory_limit_bytes: int = 0,
        default_batching: BatchingPolicy = BatchingPolicy(),
        max_request_rows: int = 0,
        prediction_log: PredictionLog | None = None,
        follow_events: bool = False,
        seed: int | None = None,
        busy_threads: Callable[[], int] | None = None,
    ):
        """`busy_threads` tells dynamic batching how many server threads are serving a call now:
        a batch waits for more rows only while some of them may still bring one."""
        self._source = source
        self._busy_threads = busy_threads
        self._cache = cache
        self.memory_limit_bytes = memory_limit_bytes
        self.default_batching = default_batching
        self.max_request_rows = max_request_rows
        self._log = prediction_log
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._deployments: OrderedDict[ModelRef, Deployment] = OrderedDict()  # least recently used first
        self._loading: dict[ModelRef, threading.Lock] = {}
        self._measuring = threading.Lock()
        self._stop = threading.Event()
        self._reloads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reload")
        self._watcher: threading.Thread | None = None
        self._follow = follow_events

    # -- life cycle -------------------------------------------------------------------------
    def follow_events(self) -> None:
        """Starts following the source's events (alias moves, new versions) to hot-reload.

        With `follow_events=True` this happens on the first load, so an idle server watches nothing."""
        with self._lock:
            if self._watcher is not None or self._stop.is_set():
                return
            self._watcher = threading.Thread(target=self._watch, name="model-events", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        self._stop.set()
        self._reloads.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            deployments = list(self._deployments.values())
            self._deployments.clear()
        for deployment in deployments:
            for version in deployment.served():
                version.retire()
        if self._log is not None:
            self._log.close()
        self._update_gauges()

    # -- loading ----------------------------------------------------------------------------
    def load(
        self,
        ref: ModelRef,
        *,
        canary: ModelRef | None = None,
        canary_weight: float = 0.0,
        batching: BatchingPolicy | None = None,
    ) -> Deployment:
        """Loads `ref` (and its canary) and returns it READY; an already loaded ref is updated."""
        if canary is not None and canary.name != ref.name:
            raise InvalidArgument(
                "canary.name", f"a canary must be a version of {ref.name!r}, not {canary.name!r}"
            )
        if not 0.0 <= canary_weight <= 1.0:
            raise InvalidArgument("canary_weight", f"must be in [0, 1], got {canary_weight}")
        with self._key_lock(ref):
            with self._lock:
                existing = self._deployments.get(ref)
            policy = batching or (existing.policy if existing else self.default_batching)
            if existing is None or policy != existing.policy:
                primary = self._load_version(self._source.resolve(ref), policy, keep=ref)
            else:
                primary = existing.primary
            canary_version = None
            if canary is not None:
                canary_version = self._load_version(self._source.resolve(canary), policy, keep=ref)
            deployment = Deployment(ref, primary, policy)
            deployment.canary, deployment.canary_weight = canary_version, canary_weight if canary else 0.0
            with self._lock:
                self._deployments[ref] = deployment
                self._deployments.move_to_end(ref)
            if existing is not None:
                for old in existing.served():
                    if old is not primary:
                        old.retire()
        self._update_gauges()
        if self._follow:
            self.follow_events()
        log.info("loaded %s as version %d", ref, primary.version)
        return deployment

    def unload(self, ref: ModelRef, wait_s: float = 30.0) -> None:
        with self._lock:
            deployment = self._deployments.pop(ref, None)
        if deployment is None:
            raise NotFound("loaded model", str(ref))
        for version in deployment.served():
            version.retire(wait_s=wait_s)
        self._update_gauges()
        log.info("unloaded %s", ref)

    def get(self, ref: ModelRef, *, load: bool = True) -> Deployment:
        """The deployment of `ref`, loaded on first use unless `load` is False (then NotFound)."""
        with self._lock:
            deployment = self._deployments.get(ref)
            if deployment is not None:
                self._deployments.move_to_end(ref)
                return deployment
        if not load:
            raise NotFound("loaded model", str(ref))
        return self.load(ref)

    def loaded(self, name: str = "") -> list[Deployment]:
        with self._lock:
            found = [d for d in self._deployments.values() if not name or d.ref.name == name]
        return sorted(found, key=lambda d: (d.ref.name, str(d.ref)))

    def memory_used_bytes(self) -> int:
        with self._lock:
            return sum(d.memory_bytes for d in self._deployments.values())

    def _key_lock(self, ref: ModelRef) -> threading.Lock:
        with self._lock:
            return self._loading.setdefault(ref, threading.Lock())

    def _load_version(
        self, resolved: ResolvedVersion, policy: BatchingPolicy, keep: ModelRef
    ) -> ServedVersion:
        label = f"{resolved.name} v{resolved.version}"
        data = self._cache.get(resolved, self._source.fetch)
        self._make_room(len(data), keep)  # early room for at least the artifact's size
        with self._measuring:  # one load at a time, so that each memory figure is its own
            before = resident_bytes()
            bundle = self._deserialize(data, resolved, label)
            grown = resident_bytes() - before
        # Measured: what the process grew by while deserializing and smoke-predicting. Never less
        # than the artifact (freed memory reused by the allocator shows up as no growth).
        memory = max(grown, len(data))
        self._make_room(memory, keep)
        return ServedVersion(resolved, bundle, memory, policy, self._busy_threads)

    @staticmethod
    def _deserialize(data: bytes, resolved: ResolvedVersion, label: str) -> ModelBundle:
        """The verified, unpickled bundle, once a one-row smoke prediction has succeeded."""
        try:
            bundle = load_bundle(data, resolved.sha256)
        except (DataLoss, FailedPrecondition):
            raise
        except Exception as exc:  # noqa: BLE001 - any unpickling failure is the artifact's fault
            raise FailedPrecondition(f"{label} failed to load: {exc}", subject=label) from exc
        try:
            runtime = runtime_for(bundle)
            smoke = runtime.predict(runtime.prepare(smoke_frame(bundle.inputs)))
            if len(smoke.predictions) != 1:
                raise ValueError(f"{len(smoke.predictions)} predictions for 1 row")
        except Exception as exc:  # noqa: BLE001 - a model that cannot predict must not go live
            raise FailedPrecondition(f"{label} failed its smoke prediction: {exc}", subject=label) from exc
        return bundle

    def _make_room(self, needed: int, keep: ModelRef) -> None:
        """Unloads least recently used models until `needed` more bytes fit under the cap."""
        if not self.memory_limit_bytes:
            return
        evicted = []
        with self._lock:
            used = sum(d.memory_bytes for d in self._deployments.values())
            for ref in list(self._deployments):
                if used + needed <= self.memory_limit_bytes:
                    break
                if ref == keep:
                    continue
                deployment = self._deployments.pop(ref)
                used -= deployment.memory_bytes
                evicted.append(deployment)
            fits = used + needed <= self.memory_limit_bytes
        for deployment in evicted:
            log.info("evicted %s (least recently used) to stay under the memory cap", deployment.ref)
            for version in deployment.served():
                version.retire()
        if not fits:
            raise ResourceExhausted(
                f"model needs {needed} bytes but the memory cap is {self.memory_limit_bytes} bytes "
                f"({used} in use by models that cannot be evicted)"
            )

    def _update_gauges(self) -> None:
        with self._lock:
            telemetry.LOADED_MODELS.set(len(self._deployments))
            telemetry.MEMORY_BYTES.set(sum(d.memory_bytes for d in self._deployments.values()))

    # -- predicting -------------------------------------------------------------------------
    def predict(
        self,
        ref: ModelRef,
        batch: InputBatch,
        *,
        request_id: str = "",
        omit_probabilities: bool = False,
        labels: dict[str, str] | None = None,
        log: bool = True,
        deployment: Deployment | None = None,
    ) -> PredictResult:
        """Predicts `batch` with the version `ref` picks. `log=False` keeps this request out of the
        prediction log (e.g. a retrainer scoring holdout rows, which is not live traffic).
        `deployment` is `get(ref)` when the caller has just looked it up (saves a second lookup)."""
        start = time.perf_counter()
        try:
            if batch.rows == 0:
                raise InvalidArgument("inputs", "no rows to predict")
            if self.max_request_rows and batch.rows > self.max_request_rows:
                raise ResourceExhausted(
                    f"request has {batch.rows} rows; the limit is {self.max_request_rows} rows per request"
                )
            if deployment is None:
                deployment = self.get(ref)
            deployment.touch()
            version = self._acquire(deployment)
            try:
                runtime = version.runtime
                data = runtime.prepare(
                    build_frame(version.bundle.inputs, batch, keep_matrix=runtime.accepts_matrix)
                )
                try:
                    prediction = version.predict(data)
                except (ValueError, TypeError) as exc:
                    # The rows passed the signature but the estimator refused them (e.g. a value
                    # its encoder cannot take): the request's fault, reported as such.
                    raise InvalidArgument("inputs", f"the model could not predict these rows: {exc}") from exc
            finally:
                version.release()
        except LoopmlError as exc:
            telemetry.ERRORS.labels(ref.name, exc.code).inc()
            raise
        except Exception:
            telemetry.ERRORS.labels(ref.name, "INTERNAL").inc()
            raise
        elapsed = time.perf_counter() - start
        version.metrics.observe(batch.rows, elapsed)
        if omit_probabilities:
            prediction = Prediction(prediction.predictions, None)
        result = PredictResult(
            request_id or new_request_id(), version.name, version.version, prediction, version.bundle, elapsed
        )
        if log and self._log is not None:
            bundle = version.bundle
            self._log.submit(
                PredictionRecord(
                    result.request_id,
                    version.name,
                    version.version,
                    datetime.now(UTC),
                    data,
                    prediction,
                    list(bundle.class_labels),
                    bundle.label_column,
                    elapsed,
                    dict(labels or {}),
                    bundle.input_names,
                )
            )
        return result

    def _acquire(self, deployment: Deployment) -> ServedVersion:
        for _ in range(100):
            version = deployment.pick(self._rng)
            if version.acquire():
                return version
            time.sleep(0.001)  # swapped out between pick and acquire: pick again
        raise Unavailable(f"model {deployment.ref} is being unloaded")

    # -- hot reload ---------------------------------------------------------------------------
    def _watch(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                for event in self._source.watch(self._stop):
                    backoff = 0.5
                    self._on_event(event)
            except Exception as exc:  # noqa: BLE001 - keep following after a broken stream
                log.warning("model events: %s; watching again in %.1fs", str(exc).splitlines()[0], backoff)
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 30.0)

    def _on_event(self, event: AliasMoved | VersionReady) -> None:
        for deployment in self.loaded(event.name):
            ref = deployment.ref
            if isinstance(event, AliasMoved):
                follows = ref.alias == event.alias and event.version > 0
            else:
                follows = ref.latest and event.version > deployment.primary.version
            if follows and deployment.primary.version != event.version:
                self._reloads.submit(self.reload, ref, event.version)

    def reload(self, ref: ModelRef, version: int) -> bool:
        """Loads `version` beside the serving one, smoke-tests it, swaps; on failure keeps the old."""
        with self._lock:
            deployment = self._deployments.get(ref)
        if deployment is None:
            return False
        try:
            resolved = self._source.resolve(ModelRef(ref.name, version=version))
            new = self._load_version(resolved, deployment.policy, keep=ref)
        except Exception as exc:  # noqa: BLE001 - reported; the old version keeps serving
            deployment.failed = (version, str(exc))
            telemetry.RELOADS.labels(ref.name, "failed").inc()
            log.error(
                "reload of %s to version %d failed; version %d keeps serving: %s",
                ref,
                version,
                deployment.primary.version,
                exc,
            )
            return False
        with self._lock:
            current = self._deployments.get(ref) is deployment
            if current:
                old, deployment.primary, deployment.failed = deployment.primary, new, None
        if not current:  # unloaded or reloaded explicitly meanwhile: drop the new version
            new.retire()
            return False
        old.retire()
        telemetry.RELOADS.labels(ref.name, "success").inc()
        self._update_gauges()
        log.info("reloaded %s: version %d -> %d", ref, old.version, new.version)
        return True
