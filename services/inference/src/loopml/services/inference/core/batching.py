"""Dynamic batching: concurrent requests for one model version are merged into one model call.

A worker thread takes the first waiting request, then keeps collecting until `max_batch_size` rows
or `max_delay_s` have passed, calls the model once on the concatenated rows and hands each caller
its own slice. A request larger than the batch limit runs alone. If the merged call fails, each
request is retried alone so that one bad request cannot fail its neighbours.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from loopml.modelkit import Prediction
from loopml.services.inference.core import telemetry


@dataclass(frozen=True)
class BatchingPolicy:
    enabled: bool = False
    max_batch_size: int = 64
    max_delay_s: float = 0.002


@dataclass
class _Pending:
    data: object
    rows: int
    enqueued: float = field(default_factory=time.perf_counter)
    done: threading.Event = field(default_factory=threading.Event)
    result: Prediction | None = None
    error: BaseException | None = None


class DynamicBatcher:
    """Batches calls of `runtime.predict` (the runtime also merges and slices its inputs)."""

    def __init__(self, runtime, policy: BatchingPolicy, labels: tuple[str, str]):
        self._runtime = runtime
        self._predict = runtime.predict
        self.policy = policy
        self._labels = labels
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._carry: _Pending | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"batcher-{labels[0]}-{labels[1]}", daemon=True
        )
        self._thread.start()

    def predict(self, data) -> Prediction:
        pending = _Pending(data, self._runtime.rows(data))
        self._queue.put(pending)
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.result

    def close(self) -> None:
        """Stops the worker after the requests already queued are answered."""
        self._queue.put(None)

    def _next(self, timeout: float | None) -> _Pending | None:
        if self._carry is not None:
            item, self._carry = self._carry, None
            return item
        return (
            self._queue.get(timeout=timeout) if timeout is None or timeout > 0 else self._queue.get_nowait()
        )

    def _run(self) -> None:
        while True:
            first = self._next(None)
            if first is None:
                return
            batch, rows = [first], first.rows
            deadline = time.perf_counter() + self.policy.max_delay_s
            stop = False
            while rows < self.policy.max_batch_size:
                try:
                    item = self._next(deadline - time.perf_counter())
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                if rows + item.rows > self.policy.max_batch_size:
                    self._carry = item  # starts the next batch
                    break
                batch.append(item)
                rows += item.rows
            self._answer(batch)
            if stop:
                while self._carry is not None:
                    self._answer([self._next(0)])
                return

    def _answer(self, batch: list[_Pending]) -> None:
        start = time.perf_counter()
        for item in batch:
            telemetry.QUEUE_TIME.labels(*self._labels).observe(start - item.enqueued)
        telemetry.BATCH_SIZE.labels(*self._labels).observe(sum(i.rows for i in batch))
        if len(batch) == 1:
            self._run_alone(batch[0])
            return
        try:
            merged = self._runtime.concat([item.data for item in batch])
            prediction = self._predict(merged)
        except Exception:  # noqa: BLE001 - fall back to one call per request
            for item in batch:
                self._run_alone(item)
            return
        offset = 0
        for item in batch:
            end = offset + item.rows
            probabilities = None if prediction.probabilities is None else prediction.probabilities[offset:end]
            item.result = Prediction(np.asarray(prediction.predictions[offset:end]), probabilities)
            offset = end
            item.done.set()

    def _run_alone(self, item: _Pending) -> None:
        try:
            item.result = self._predict(item.data)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
            item.error = exc
        item.done.set()
