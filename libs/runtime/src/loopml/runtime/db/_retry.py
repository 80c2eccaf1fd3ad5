"""Bounded retries of database work that failed for a transient reason (see `is_transient`)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from loopml.runtime.db._classify import is_transient
from loopml.runtime.errors import Unavailable

T = TypeVar("T")
log = logging.getLogger("loopml.runtime.db")


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` tries in all; the wait before try n+1 is about `backoff_s * 2**(n-1)`, capped
    at `max_backoff_s`, with jitter so that competing writers spread out. The defaults ride out
    about 4 to 7 s of a database being away (a PostgreSQL restart, a managed server's failover)."""

    attempts: int = 8
    backoff_s: float = 0.1
    max_backoff_s: float = 2.0

    def delay(self, attempt: int) -> float:
        base = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        return base * random.uniform(0.5, 1.0)


DEFAULT_RETRY = RetryPolicy()


def retry_transient(fn: Callable[[], T], policy: RetryPolicy = DEFAULT_RETRY, what: str = "database") -> T:
    """Call `fn` until it returns; retry it on transient database errors, up to `policy.attempts`
    tries in all, then raise `Unavailable` (chained to the last error). Any other exception
    propagates at once. `fn` must be safe to run again: each try should be one whole transaction.
    """
    if policy.attempts < 1:
        raise ValueError("attempts must be at least 1")
    for attempt in range(1, policy.attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc):
                raise
            last = exc
            if attempt < policy.attempts:
                delay = policy.delay(attempt)
                log.warning(
                    "%s: transient error (try %d of %d), retrying in %.2fs: %s",
                    what,
                    attempt,
                    policy.attempts,
                    delay,
                    describe_error(exc),
                )
                time.sleep(delay)
    raise Unavailable(
        f"{what} is unavailable after {policy.attempts} tries: {describe_error(last)}"
    ) from last


def describe_error(exc: BaseException) -> str:
    """First line of the driver's message, without SQLAlchemy's statement dump."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {text[0] if text else ''}"
