"""Leader election over the metrics database: of several replicas, the one holding the lease runs
the background jobs with side effects (alert evaluation with its webhooks and retrainings,
retention deletes); every replica keeps answering RPCs.

The lease is one row (`metrics_leases`): its owner and its expiry on the database's clock, so the
replicas' own clocks need not agree. The holder renews it every third of its length; another
replica takes it at its first renewal after the lease expired (a crashed leader is replaced
within 4/3 of a lease length), or after a clean shutdown, when the holder released it. A replica
counts itself leader only until its own monotonic clock says the lease it last renewed could
have expired, which is never later than the database's expiry: two replicas never start leader
work at the same time (a job run already under way when the lease runs out finishes).
"""

from __future__ import annotations

import logging
import threading
import time

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from loopml.runtime.db import Database
from loopml.services.metrics import storage as t

log = logging.getLogger("loopml.metrics.lease")


class LeaderLease:
    def __init__(self, database: Database, owner: str, length_s: float, name: str = "background-jobs"):
        self.db = database
        self.owner = owner
        self.length_s = length_s
        self.name = name
        self._held_until = 0.0  # time.monotonic() deadline of the lease last renewed
        self._lock = threading.Lock()

    def held(self) -> bool:
        """Whether this replica is the leader now."""
        with self._lock:
            return time.monotonic() < self._held_until

    def renew(self) -> bool:
        """Take the lease when it is free or expired, extend it when held; returns held().
        A database error counts as not holding it (logged)."""
        started = time.monotonic()
        try:
            won = self.db.transaction(self._take_or_extend)
        except Exception:  # noqa: BLE001 - a database outage means: not the leader for now
            log.exception("renewing the leader lease failed")
            won = False
        with self._lock:
            was = time.monotonic() < self._held_until
            self._held_until = started + self.length_s if won else 0.0
        if won != was:
            log.info("%s the leader of the background jobs", "now" if won else "no longer")
        return won

    def release(self) -> None:
        """Give the lease up (on shutdown) so another replica takes over at once."""
        with self._lock:
            self._held_until = 0.0
        c = t.leases.c
        try:
            self.db.transaction(
                lambda s: s.execute(
                    sa.update(t.leases)
                    .where(c.name == self.name, c.owner == self.owner)
                    .values(expires_at=0.0)
                )
            )
        except Exception:  # noqa: BLE001 - the lease then simply expires
            log.exception("releasing the leader lease failed")

    def _take_or_extend(self, session) -> bool:
        c = t.leases.c
        now = self._db_now()
        # RETURNING tells whether a row was written (an insert's rowcount may be unknown)
        taken = session.execute(
            sa.update(t.leases)
            .where(c.name == self.name, sa.or_(c.owner == self.owner, c.expires_at < now))
            .values(
                owner=self.owner,
                expires_at=now + self.length_s,
                acquired_at=sa.case((c.owner == self.owner, c.acquired_at), else_=now),
            )
            .returning(c.name)
        ).first()
        if taken is not None:
            return True
        insert = postgresql.insert if self.db.backend == "postgresql" else sqlite.insert
        created = session.execute(
            insert(t.leases)
            .values(name=self.name, owner=self.owner, expires_at=now + self.length_s, acquired_at=now)
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(t.leases.c.name)
        ).first()
        return created is not None

    def _db_now(self):
        """The database's clock in epoch seconds, as an SQL expression."""
        if self.db.backend == "postgresql":
            return sa.func.extract("epoch", sa.func.clock_timestamp())
        return (sa.func.julianday("now") - 2440587.5) * 86400.0
