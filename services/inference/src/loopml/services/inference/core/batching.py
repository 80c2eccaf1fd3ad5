"""Dynamic batching: concurrent requests for one model version are merged into one model call.

Requests queue up in arrival order. Whoever finds no batch in progress leads: it takes the requests
at the head of the queue (its own first), keeps collecting until `max_batch_size` rows or
`max_delay_s` have passed, calls the model once on the concatenated rows, hands each waiting caller
its own slice and passes the lead to the oldest request still queued. There is no batching
thread: the leader's own request costs no hand-over between threads, and on this service's small
models a wake-up between threads costs as much as a share of a model call.

With `max_delay_s` 0 a leader never waits: it takes whatever is queued, so requests merge exactly
when they arrive faster than the model answers (the cheapest setting for throughput: one model
call costs a fixed overhead plus a small cost per row). A request larger than the batch limit
runs alone. Given the server's count of busy threads, a leader waits only while some busy thread
may still bring a request (a lone request never waits for the delay). If the merged call fails,
each request is retried alone so that one bad request cannot fail its neighbours.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from loopml.modelkit import Prediction
from loopml.services.inference.core import telemetry


@dataclass(frozen=True)
class BatchingPolicy:
    enabled: bool = False
    max_batch_size: int = 64
    max_delay_s: float = 0.002


class _Pending:
    """One queued request. `wake` is a lock taken at creation and released once the request is
    answered or handed the lead: the cheapest one-shot signal between two threads."""

    __slots__ = ("data", "rows", "enqueued", "wake", "answered", "result", "error")

    def __init__(self, data, rows: int):
        self.data = data
        self.rows = rows
        self.enqueued = time.perf_counter()
        self.wake = threading.Lock()
        self.wake.acquire()
        self.answered = False
        self.result: Prediction | None = None
        self.error: BaseException | None = None


class DynamicBatcher:
    """Batches calls of `runtime.predict` (the runtime also merges and slices its inputs)."""

    def __init__(
        self,
        runtime,
        policy: BatchingPolicy,
        labels: tuple[str, str],
        busy_threads: Callable[[], int] | None = None,
    ):
        self._runtime = runtime
        self._busy_threads = busy_threads
        self._predict = runtime.predict
        self.policy = policy
        self._queue_time = telemetry.QUEUE_TIME.labels(*labels)
        self._batch_size = telemetry.BATCH_SIZE.labels(*labels)
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)  # a leader waiting for rows hears arrivals
        self._queue: deque[_Pending] = deque()
        self._leading = False  # whether some request is leading; never with an empty queue

    def predict(self, data) -> Prediction:
        pending = _Pending(data, self._runtime.rows(data))
        with self._lock:
            self._queue.append(pending)
            lead = not self._leading
            if lead:
                self._leading = True
            else:
                self._arrived.notify()
        if not lead:
            pending.wake.acquire()  # answered by a leader, or handed the lead
        if not pending.answered:
            try:
                self._answer(self._collect())  # the head of the queue is this request
            finally:
                self._pass_lead()
        if pending.error is not None:
            raise pending.error
        return pending.result

    def _collect(self) -> list[_Pending]:
        """Takes the next batch from the head of the queue, waiting up to `max_delay_s` for rows."""
        limit = self.policy.max_batch_size
        deadline = time.perf_counter() + self.policy.max_delay_s
        busy = self._busy_threads
        with self._lock:
            while True:
                count, rows = 0, 0
                for item in self._queue:
                    if count and rows + item.rows > limit:
                        break
                    count, rows = count + 1, rows + item.rows
                full = rows >= limit or count < len(self._queue)  # the next request would not fit
                remaining = deadline - time.perf_counter()
                # Every busy server thread already serves a request of this batch: nothing else is
                # on its way, so waiting would only add latency.
                alone = busy is not None and busy() <= len(self._queue)
                if full or remaining <= 0 or alone:
                    return [self._queue.popleft() for _ in range(count)]
                self._arrived.wait(remaining)

    def _pass_lead(self) -> None:
        with self._lock:
            if self._queue:
                self._queue[0].wake.release()  # the oldest waiting request leads the next batch
            else:
                self._leading = False

    def _answer(self, batch: list[_Pending]) -> None:
        start = time.perf_counter()
        for item in batch:
            self._queue_time.observe(start - item.enqueued)
        self._batch_size.observe(sum(i.rows for i in batch))
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
            self._settle(item, Prediction(np.asarray(prediction.predictions[offset:end]), probabilities))
            offset = end

    def _run_alone(self, item: _Pending) -> None:
        try:
            result = self._predict(item.data)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
            item.error = exc
            result = None
        self._settle(item, result)

    @staticmethod
    def _settle(item: _Pending, result: Prediction | None) -> None:
        item.result, item.answered = result, True
        item.wake.release()  # the leader's own request: released with nobody waiting, harmless
