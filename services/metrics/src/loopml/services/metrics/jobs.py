"""Background loops of the server: retention maintenance, alert evaluation, gauge refresh, and the
leader lease that decides which replica runs the first two."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("loopml.metrics.jobs")


class PeriodicJob:
    """Runs `work` every `interval_s` seconds on a daemon thread until stopped; with `only_if`,
    only the runs when it answers True (e.g. while this replica holds the leader lease)."""

    def __init__(
        self,
        name: str,
        interval_s: float,
        work: Callable[[], object],
        only_if: Callable[[], bool] | None = None,
    ):
        self.name = name
        self.interval_s = interval_s
        self.work = work
        self.only_if = only_if
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.interval_s <= 0:
            return
        self._thread = threading.Thread(target=self._run, name=f"metrics-{self.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            if self.only_if is not None and not self.only_if():
                continue
            try:
                self.work()
            except Exception:  # noqa: BLE001 - keep the loop alive; the failure is logged
                log.exception("job %s failed", self.name)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
