"""The prediction log: every answered request goes to a sink (the metrics service) in the background.

`PredictionLog.submit` never blocks: records go into a bounded queue and a worker thread sends
them in batches. When the queue is full, or the sink fails (metrics service down), records are
dropped and counted (`loopml_inference_prediction_log_dropped_total`); predictions go on.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np
import pandas as pd

from loopml.modelkit import Prediction
from loopml.services.inference.core import telemetry

log = logging.getLogger("loopml.inference.predlog")


@dataclass
class PredictionRecord:
    request_id: str
    model_name: str
    model_version: int
    time: datetime
    #: The model input as served: a DataFrame, or a numeric matrix in signature order.
    inputs: pd.DataFrame | np.ndarray
    prediction: Prediction
    class_labels: list
    label_column: str
    latency_s: float
    labels: dict[str, str] = field(default_factory=dict)
    input_names: list[str] = field(default_factory=list)

    def input_frame(self) -> pd.DataFrame:
        if isinstance(self.inputs, pd.DataFrame):
            return self.inputs
        return pd.DataFrame(self.inputs, columns=self.input_names)


class PredictionSink(Protocol):
    def send(self, records: list[PredictionRecord]) -> None:
        """Delivers records or raises."""


class PredictionLog:
    def __init__(
        self, sink: PredictionSink, *, capacity: int = 10_000, batch_size: int = 256, retry_s: float = 1.0
    ):
        self._sink = sink
        self._queue: queue.Queue[PredictionRecord] = queue.Queue(maxsize=capacity)
        self._batch_size = batch_size
        self._retry_s = retry_s
        self._stop = threading.Event()
        self.dropped = 0
        self.sent = 0
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def submit(self, record: PredictionRecord) -> None:
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self._drop(1)

    def _drop(self, count: int) -> None:
        self.dropped += count
        telemetry.LOG_DROPPED.inc(count)

    def _run(self) -> None:
        while not self._stop.is_set() or not self._queue.empty():
            try:
                batch = [self._queue.get(timeout=0.2)]
            except queue.Empty:
                continue
            while len(batch) < self._batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._sink.send(batch)
            except Exception as exc:  # noqa: BLE001 - the log must never take serving down
                self._drop(len(batch))
                log.warning("prediction log: %d records dropped: %s", len(batch), exc)
                self._stop.wait(self._retry_s)  # back off while the sink is down
                continue
            self.sent += len(batch)
            telemetry.LOG_SENT.inc(len(batch))

    def close(self, timeout: float = 5.0) -> None:
        """Sends what is queued (within `timeout`), then stops."""
        self._stop.set()
        self._thread.join(timeout)
