"""The worker loop of a trainer process: claim free slots of active searches (leases), run them in
threads, keep the leases alive, give them back at shutdown so another process resumes the search;
retry the registrations that were waiting for an unavailable registry.
"""

from __future__ import annotations

import logging
import threading
import time

from loopml.services.trainer.core.execution import Engine, SlotRun
from loopml.services.trainer.core.registration import RegistrationRetrier

log = logging.getLogger(__name__)


class SearchRunner:
    """Runs up to `max_slots` search slots at once in this process."""

    def __init__(self, engine: Engine, *, max_slots: int = 1, poll_s: float = 0.5):
        self.engine = engine
        self.max_slots = max_slots
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._threads: dict[tuple[str, int], threading.Thread] = {}
        self._loop: threading.Thread | None = None
        self.registrations = RegistrationRetrier(engine)

    def start(self) -> None:
        self._loop = threading.Thread(target=self._run, name="loopml-trainer-runner", daemon=True)
        self._loop.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._loop is not None:
            self._loop.join(timeout)
        for thread in list(self._threads.values()):
            thread.join(timeout)

    def _run(self) -> None:
        config = self.engine.config
        last_renew = 0.0
        while not self._stop.is_set():
            try:
                self._threads = {k: t for k, t in self._threads.items() if t.is_alive()}
                self.registrations.run_due()
                if time.monotonic() - last_renew > config.lease_s / 3:
                    self.engine.state.renew_leases(config.worker_id, list(self._threads), config.lease_s)
                    last_renew = time.monotonic()
                if len(self._threads) < self.max_slots:
                    claimed = self.engine.state.claim_slot(config.worker_id, config.lease_s)
                    if claimed is not None:
                        self._start_slot(*claimed)
                        continue
            except Exception:  # noqa: BLE001 - a database hiccup must not end the loop
                log.exception("trainer runner loop")
            self._stop.wait(self.poll_s)

    def _start_slot(self, search_id: str, slot: int) -> None:
        log.info("worker %s runs search %s slot %d", self.engine.config.worker_id, search_id, slot)
        run = SlotRun(self.engine, search_id, slot, self._stop)
        thread = threading.Thread(target=run.run, name=f"search-{search_id}-{slot}", daemon=True)
        self._threads[(search_id, slot)] = thread
        thread.start()
