"""The connections of one sync: each attempt logs in and syncs from the last committed batch;
a dropped connection or a server asking to slow down ends the attempt, and the next one waits.

- dropped mid-sync: the next attempt waits a backoff (backoff.py: capped, jittered); the
  waits start over only after a connection lived `backoff_reset_seconds`, so a server that
  drops every new connection gets `connect_attempts` of them, then the task fails;
- `[THROTTLED]`, `[UNAVAILABLE]`, `[LIMIT]`, "Suggested Backoff Time" (throttling.py): the
  next attempt waits the time the server names, or a backoff when it names none, as long as
  the waits of this sync stay within `throttle_max_wait_seconds`; else the task fails saying
  when to come back.
A stop (cancel, SIGTERM) ends any wait at once.
"""

from __future__ import annotations

import imaplib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from consumers.executors import Stopped, TaskFailed
from consumers.mail.backoff import Backoff
from consumers.mail.throttling import Throttled

log = logging.getLogger("consumers.imap")
T = TypeVar("T")
CONNECTION_LOST = (OSError, imaplib.IMAP4.abort)
RESUMES = "the next sync resumes from the last committed batch"


@dataclass(frozen=True)
class RetryLimits:
    attempts: int = 3  # SYNC_MAIL_CONNECT_ATTEMPTS: connections that fail in a row
    first_backoff_seconds: float = 0.5
    max_backoff_seconds: float = 60.0  # SYNC_MAIL_MAX_BACKOFF_SECONDS
    backoff_reset_seconds: float = 60.0  # SYNC_MAIL_BACKOFF_RESET_SECONDS
    throttle_max_wait_seconds: float = 300.0  # SYNC_MAIL_THROTTLE_MAX_WAIT_SECONDS


def with_attempts(
    attempt: Callable[[Backoff], T],
    limits: RetryLimits,
    address: str,
    stopping: threading.Event,
) -> T:
    """`attempt(backoff)` until it returns; it calls backoff.opened() once logged in and
    backoff.closed() when its connection ends."""
    backoff = Backoff(
        first=limits.first_backoff_seconds,
        cap=limits.max_backoff_seconds,
        reset_after=limits.backoff_reset_seconds,
    )
    waited = 0.0
    while True:
        try:
            return attempt(backoff)
        except Throttled as slow:
            named = slow.asked.retry_after
            if named is None and backoff.failures + 1 >= limits.attempts:
                said = f"{slow}; still so after {limits.attempts} tries; {RESUMES}"
                raise TaskFailed(said) from None
            delay = backoff.next_delay() if named is None else named
            if waited + delay > limits.throttle_max_wait_seconds:
                raise TaskFailed(
                    f"{slow}; waiting {delay:g} s more would exceed the "
                    f"{limits.throttle_max_wait_seconds:g} s a sync waits for a server "
                    f"(SYNC_MAIL_THROTTLE_MAX_WAIT_SECONDS); the next sync after that time "
                    "resumes from the last committed batch"
                ) from None
            waited += delay
            log.warning("%s; next attempt in %.1f s", slow, delay)
        except CONNECTION_LOST as error:
            if backoff.failures + 1 >= limits.attempts:
                raise TaskFailed(
                    f"connection to the IMAP server at {address} lost during the sync: "
                    f"{error}; {RESUMES}"
                ) from None
            delay = backoff.next_delay()
            log.warning("connection to %s lost (%s); next attempt in %.1f s", address, error, delay)
        if stopping.wait(delay):
            raise Stopped(f"stopped while waiting to reconnect to {address}; {RESUMES}")
