"""What the registry runs besides answering calls: the event feed, webhook senders and the
sweeper that fails abandoned uploads and prunes old events. Started with the server, stopped with it."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from loopml.services.registry.core import EventFeed, Registry
from loopml.services.registry.webhooks import WebhookSender

log = logging.getLogger("loopml.registry")


class Background:
    def __init__(
        self,
        registry: Registry,
        feed: EventFeed,
        webhooks: WebhookSender | None,
        *,
        pending_timeout_s: float,
        event_retention_s: float,
    ):
        self.registry = registry
        self.feed = feed
        self.webhooks = webhooks
        self.pending_timeout = timedelta(seconds=pending_timeout_s)
        self.event_retention = timedelta(seconds=event_retention_s)
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None

    def start(self) -> None:
        self.feed.start()
        if self.webhooks is not None:
            self.webhooks.start()
        self._sweeper = threading.Thread(target=self._sweep, name="registry-sweeper", daemon=True)
        self._sweeper.start()

    def stop(self) -> None:
        self._stop.set()
        if self.webhooks is not None:
            self.webhooks.stop()
        self.feed.stop()
        if self._sweeper is not None:
            self._sweeper.join(timeout=5)

    def _sweep(self) -> None:
        limits = (self.pending_timeout.total_seconds(), self.event_retention.total_seconds())
        interval = min(*(limit / 4 for limit in limits), 60.0)
        while not self._stop.wait(interval):
            try:
                failed = self.registry.fail_abandoned_uploads(self.pending_timeout)
                if failed:
                    log.warning("marked %d abandoned upload(s) FAILED", failed)
                self.feed.prune(self.event_retention)
            except Exception:  # noqa: BLE001 - retried at the next round
                log.warning("cannot sweep abandoned uploads or old events", exc_info=True)
