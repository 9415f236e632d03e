"""Waits between IMAP attempts, and the server answers that ask for one."""

from __future__ import annotations

import pytest

from consumers.mail.backoff import Backoff
from consumers.mail.throttling import asked_to_wait


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_waits_double_up_to_the_cap_with_jitter_in_the_upper_half() -> None:
    low = Backoff(first=1, cap=8, rand=lambda: 0.0)
    high = Backoff(first=1, cap=8, rand=lambda: 1.0)
    assert [low.next_delay() for _ in range(6)] == [0.5, 1, 2, 4, 4, 4]
    assert [high.next_delay() for _ in range(6)] == [1, 2, 4, 8, 8, 8]


def test_the_waits_start_over_only_after_a_connection_lived_long_enough() -> None:
    clock = Clock()
    backoff = Backoff(first=1, cap=60, reset_after=30, rand=lambda: 1.0, clock=clock)
    backoff.next_delay()
    backoff.next_delay()
    backoff.opened()
    clock.now += 29  # dropped before it counts as a success: the waits keep growing
    backoff.closed()
    assert (backoff.failures, backoff.next_delay()) == (2, 4)
    backoff.opened()
    clock.now += 30
    backoff.closed()
    assert (backoff.failures, backoff.next_delay()) == (0, 1)


@pytest.mark.parametrize(
    ("said", "seconds"),
    [
        ("NO Request is throttled. Suggested Backoff Time: 190769 milliseconds", 190.769),
        ("NO [THROTTLED] Suggested Backoff Time: 1200 ms", 1.2),
        ("BAD Suggested backoff time: 5 seconds", 5.0),
        ("NO [THROTTLED] Too many requests", None),
        ("NO [UNAVAILABLE] Temporary authentication failure. [vm:2026-12-07 22:24:05]", None),
        ("[LIMIT] Maximum number of connections from user+IP exceeded", None),
    ],
)
def test_throttle_answers_and_the_time_they_name(said: str, seconds: float | None) -> None:
    asked = asked_to_wait(said)
    assert asked is not None and asked.retry_after == seconds


@pytest.mark.parametrize(
    "said",
    ["[AUTHENTICATIONFAILED] Authentication failed.", "NO Mailbox doesn't exist: Gone", ""],
)
def test_other_answers_ask_for_no_wait(said: str) -> None:
    assert asked_to_wait(said) is None
