"""Optional HTTP webhooks: every registry event POSTed as JSON (the ModelEvent JSON mapping).

Delivery is asynchronous: one thread per URL follows the event feed from the moment the server
starts and posts each event in sequence order, retrying a failed POST (connection error or a
non-2xx answer) with exponential backoff up to `max_attempts`, then logging and moving on.
Each replica that has webhooks configured delivers, so configure them on one replica only.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request

from loopml.services.registry import convert
from loopml.services.registry.core import Event, EventFeed

log = logging.getLogger("loopml.registry.webhooks")


class WebhookSender:
    def __init__(
        self, feed: EventFeed, urls: list[str], *, max_attempts: int, backoff_s: float, timeout_s: float
    ):
        self.feed = feed
        self.urls = urls
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        start_after = self.feed.last_sequence()
        for url in self.urls:
            thread = threading.Thread(
                target=self._follow, args=(url, start_after), name="registry-webhook", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _follow(self, url: str, cursor: int) -> None:
        while not self._stop.is_set():
            try:
                events, cursor = self.feed.read(cursor)
            except Exception:  # noqa: BLE001 - keep following through database hiccups
                log.warning("cannot read registry events for webhooks", exc_info=True)
                self._stop.wait(1.0)
                continue
            for event in events:
                self._deliver(url, event)
            if not events:
                self.feed.wait(cursor, 1.0)

    def _deliver(self, url: str, event: Event) -> None:
        body = json.dumps(convert.event_to_json(event)).encode()
        delay = self.backoff_s
        for attempt in range(1, self.max_attempts + 1):
            if self._stop.is_set():
                return
            try:
                request = urllib.request.Request(
                    url,
                    data=body,
                    method="POST",
                    headers={
                        "Content-Type": "application/json",
                        "X-Loopml-Event-Sequence": str(event.sequence),
                    },
                )
                with urllib.request.urlopen(request, timeout=self.timeout_s):
                    return
            except (urllib.error.URLError, OSError) as exc:
                if attempt == self.max_attempts:
                    log.error(
                        "webhook %s: giving up on event %d after %d attempts: %s",
                        url,
                        event.sequence,
                        attempt,
                        exc,
                    )
                    return
            self._stop.wait(delay)
            delay *= 2
