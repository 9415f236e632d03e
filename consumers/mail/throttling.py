"""Server answers that say "slow down" or "try later", and the wait the server names.

RFC 5530 codes `[UNAVAILABLE]` (Dovecot: a temporary authentication failure) and `[LIMIT]`
(Dovecot: too many connections of this user), Yahoo's and others' `[THROTTLED]`, and
Microsoft's `Suggested Backoff Time: N milliseconds` (Exchange Online, with or without a code).
Such an answer ends the attempt; the next one waits the time named, or a backoff when none is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from consumers.mail.imap_errors import MailProblem

CODES = re.compile(r"\[(THROTTLED|UNAVAILABLE|LIMIT)\]", re.IGNORECASE)
SUGGESTED = re.compile(
    r"Suggested\s+Backoff\s+Time:\s*(\d{1,12})\s*(milliseconds|millisecond|ms|seconds|second|s)?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ServerAsked:
    """The server asked for a pause; `retry_after` is what it named (seconds), if anything."""

    retry_after: float | None
    said: str


class Throttled(MailProblem):
    """The server asked this service to slow down or come back later."""

    def __init__(self, reason: str, asked: ServerAsked) -> None:
        super().__init__(reason)
        self.asked = asked


def asked_to_wait(said: str) -> ServerAsked | None:
    """What the server's words ask for, or None when they are not a throttle answer."""
    suggested = SUGGESTED.search(said)
    if suggested is None and CODES.search(said) is None:
        return None
    if suggested is None:
        return ServerAsked(None, said)
    amount, unit = int(suggested[1]), (suggested[2] or "milliseconds").lower()
    seconds = amount / 1000 if unit.startswith("m") else float(amount)
    return ServerAsked(seconds, said)


def throttled(said: str, address: str) -> Throttled | None:
    """A Throttled carrying the server's words, or None."""
    asked = asked_to_wait(said)
    if asked is None:
        return None
    return Throttled(f"the IMAP server at {address} asked to slow down: {said.strip()}", asked)
