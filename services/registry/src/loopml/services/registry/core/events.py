"""`EventFeed`: reading the events table and waiting for new events, for watchers and webhooks.

The events table is the one source of truth, so every replica of the registry (and every restart)
sees the same sequence. One background thread per process looks at the event counter every
`poll_interval_s` (a one-row read) and wakes the waiting watchers when it moved; a change made
by this process wakes them at once through `notify()`. Each woken watcher then reads only the
events after its own cursor.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta

from sqlalchemy import delete, func, select

from loopml.runtime.db import Database
from loopml.runtime.errors import OutOfRange, Unavailable
from loopml.services.registry.core.model import Event, EventType, utcnow
from loopml.services.registry.core.rows import event_of, find_model
from loopml.services.registry.storage import EventCounterRow, EventRow

log = logging.getLogger("loopml.registry.events")

_BATCH = 500


class EventFeed:
    def __init__(self, database: Database, poll_interval_s: float = 0.1):
        self.database = database
        self.poll_interval_s = poll_interval_s
        self._changed = threading.Condition()
        self._last_seen = -1
        self._looked_at = float("-inf")  # time.monotonic() of the last successful look
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._poll_loop, name="registry-events", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def notify(self) -> None:
        """A change was committed by this process: look now instead of at the next poll."""
        self._look()

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            try:
                self._look()
            except Exception:  # noqa: BLE001 - a database hiccup must not kill the feed
                log.warning("cannot read the registry event counter", exc_info=True)

    def _look(self) -> None:
        last = self.last_sequence()
        self._looked_at = time.monotonic()
        with self._changed:
            if last != self._last_seen:
                self._last_seen = last
                self._changed.notify_all()

    @property
    def epoch(self) -> int:
        """The last event sequence this process knows of, or -1 when that may be out of date
        (feed not running, or the database not answering): caches keyed on it are then bypassed.
        Changes made through this process move it at once; through other replicas, within
        about one poll interval."""
        fresh = time.monotonic() - self._looked_at < 5 * self.poll_interval_s
        running = self._thread is not None and not self._stop.is_set()
        return self._last_seen if fresh and running else -1

    # -- reading -----------------------------------------------------------------------------

    def last_sequence(self) -> int:
        with self.database.session() as session:
            return session.scalar(select(EventCounterRow.last_sequence).where(EventCounterRow.id == 1)) or 0

    def read(
        self, after: int, *, model_name: str = "", types: Iterable[EventType] = (), limit: int = _BATCH
    ) -> tuple[list[Event], int]:
        """Events with sequence > `after` matching the filters, and the sequence read up to."""
        query = select(EventRow).where(EventRow.sequence > after).order_by(EventRow.sequence).limit(limit)
        with self.database.session() as session:
            rows = list(session.scalars(query))
        cursor = rows[-1].sequence if rows else after
        wanted = {t.value for t in types}
        events = [
            event_of(r)
            for r in rows
            if (not model_name or r.model_name == model_name) and (not wanted or r.type in wanted)
        ]
        return events, cursor

    def first_retained(self) -> int:
        """Sequence number of the oldest event still stored (last + 1 when none is)."""
        with self.database.session() as session:
            oldest = session.scalar(select(func.min(EventRow.sequence)))
            if oldest is not None:
                return oldest
            last = session.scalar(select(EventCounterRow.last_sequence).where(EventCounterRow.id == 1))
            return (last or 0) + 1

    def prune(self, older_than: timedelta) -> int:
        """Delete events older than `older_than`; returns how many."""
        cutoff = utcnow() - older_than
        with self.database.session() as session:
            return session.execute(delete(EventRow).where(EventRow.event_time < cutoff)).rowcount or 0

    def wait(self, after: int, timeout: float) -> None:
        """Return once an event after `after` may exist, or after `timeout` seconds."""
        with self._changed:
            if self._last_seen <= after and not self._stop.is_set():
                self._changed.wait(timeout)

    def watch(
        self,
        *,
        model_name: str = "",
        types: Iterable[EventType] = (),
        after_sequence: int | None = None,
        is_active: Callable[[], bool] = lambda: True,
        heartbeat_s: float = 1.0,
    ) -> Iterator[Event]:
        """Matching events after `after_sequence` (None: from now on) until `is_active()` is false."""
        types = list(types)
        if model_name:
            with self.database.session() as session:
                find_model(session, model_name)
        # 0 means "everything retained"; a later point must not have lost events since
        if after_sequence and after_sequence + 1 < self.first_retained():
            raise OutOfRange(
                f"events after sequence {after_sequence} are no longer retained; "
                "re-read the state and watch again from the current sequence"
            )
        cursor = self.last_sequence() if after_sequence is None else after_sequence
        while is_active() and not self._stop.is_set():
            events, cursor = self.read(cursor, model_name=model_name, types=types)
            yield from events
            if not events:
                self.wait(cursor, heartbeat_s)
        if self._stop.is_set():
            raise Unavailable(f"the registry is shutting down; watch again after sequence {cursor}")
