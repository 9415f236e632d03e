"""Syncs of a large folder that changed little, against the server's own round trips.

Both sides log in on a fresh connection and log out, run interleaved, medians taken:
- no change: the executor's incremental and full sync against `STATUS` + `SELECT` over one
  imapclient connection;
- 10 flag changes and 5 expunges made on the server (not timed) before each run: an
  incremental sync, which must bring all 15, against `SELECT (CONDSTORE)`,
  `UID FETCH 1:* (FLAGS) (CHANGEDSINCE m)` and `UID SEARCH ALL` (what a client needs to see
  the same changes).
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from imapclient import IMAPClient
from sqlalchemy import Engine

from consumers.executors import TaskSpec
from consumers.imap.executor import ImapExecutor, ImapSettings
from consumers.mail.accounts import AccountStore, ImapAccount
from consumers.mail.message_store import MessageStore
from consumers.mail.password_box import PasswordBox

STATUS_ITEMS = ["MESSAGES", "UIDNEXT", "UIDVALIDITY", "HIGHESTMODSEQ"]
TARGET = 3.0  # at most this many times the raw round trips


@dataclass
class Figures:
    raw_unchanged: list[float]
    incremental: list[float]
    full: list[float]
    raw_changes: list[float]
    changes: list[float]
    brought: list[tuple[int, int]]  # (flags updated, removed) per changes run


def _login(account: ImapAccount) -> IMAPClient:
    client = IMAPClient(account.host, account.port, ssl=False, timeout=600)
    client.login(account.username, account.password)
    return client


def raw_unchanged(account: ImapAccount) -> float:
    started = time.perf_counter()
    client = _login(account)
    client.folder_status("INBOX", STATUS_ITEMS)
    client.select_folder("INBOX", readonly=True)
    client.logout()
    return time.perf_counter() - started


def raw_changes(account: ImapAccount, modseq: int) -> float:
    started = time.perf_counter()
    client = _login(account)
    client._imap.untagged_responses = {}
    client._imap._simple_command("EXAMINE", '"INBOX"', "(CONDSTORE)")
    client._imap.state, client._imap.is_readonly = "SELECTED", True
    client._imap.uid("FETCH", "1:*", "(UID FLAGS)", f"(CHANGEDSINCE {modseq})")
    client._imap.uid("SEARCH", "ALL")
    client.logout()
    return time.perf_counter() - started


def change_the_server(account: ImapAccount, rng: random.Random) -> int:
    """10 flag changes and 5 expunges; the HIGHESTMODSEQ before them."""
    client = _login(account)
    info = client.select_folder("INBOX")
    before = int(info[b"HIGHESTMODSEQ"])
    uids = client.search("ALL")
    picked = rng.sample(uids, 15)
    client.add_flags(picked[:10], [b"\\Flagged"])
    client.delete_messages(picked[10:])
    client.expunge()
    client.logout()
    return before


def measure(
    engine: Engine, key: str, user: str, account: ImapAccount, runs: int, log: Callable[[str], None]
) -> Figures:
    """`user` has `account` (its INBOX already synced) in the database behind `engine`."""
    executor = ImapExecutor(
        AccountStore(engine, PasswordBox(key)),
        MessageStore(engine),
        ImapSettings(allowed_hosts=frozenset({account.host})),
    )

    def sync(kind: str) -> tuple[float, dict[str, Any]]:
        started = time.perf_counter()
        stats = executor.run(TaskSpec(user, "bench", kind), _quiet, threading.Event())
        return time.perf_counter() - started, stats

    sync("incremental")  # the counters of this connection's view are stored
    figures = Figures([], [], [], [], [], [])
    rng = random.Random(7)
    for run in range(runs):
        figures.raw_unchanged.append(raw_unchanged(account))
        seconds, stats = sync("incremental")
        assert stats["unchanged"] == stats["folders"], stats
        figures.incremental.append(seconds)
        figures.full.append(sync("full")[0])
        modseq = change_the_server(account, rng)
        seconds, stats = sync("incremental")
        figures.changes.append(seconds)
        figures.brought.append((stats["flags_updated"], stats["removed"]))
        change_the_server(account, rng)  # the same amount of change for the raw side
        figures.raw_changes.append(raw_changes(account, modseq))
        sync("incremental")  # brings the raw side's changes, not timed
        log(
            f"run {run + 1}: unchanged raw {figures.raw_unchanged[-1] * 1000:.1f} ms, "
            f"incremental {figures.incremental[-1] * 1000:.1f} ms, full "
            f"{figures.full[-1] * 1000:.1f} ms; changes raw {figures.raw_changes[-1] * 1000:.1f} "
            f"ms, incremental {figures.changes[-1] * 1000:.1f} ms bringing "
            f"{figures.brought[-1]} (flags, removals)"
        )
    return figures


def report(figures: Figures, messages: int) -> None:
    med = statistics.median
    raw, raw_changes_m = med(figures.raw_unchanged), med(figures.raw_changes)
    print(f"\n{messages:,}-message folder, medians of {len(figures.incremental)}")
    for name, values, base in (
        ("no change, incremental", figures.incremental, raw),
        ("no change, full", figures.full, raw),
        ("10 flags + 5 expunges", figures.changes, raw_changes_m),
    ):
        ratio = med(values) / base
        verdict = "meets" if ratio <= TARGET else "MISS:"
        print(
            f"  {name:24} {med(values) * 1000:8.1f} ms   raw {base * 1000:7.1f} ms   "
            f"ratio {ratio:.2f} ({verdict} target {TARGET:.0f}x)"
        )
    complete = all(b == (10, 5) for b in figures.brought)
    print(f"  every changes run brought 10 flags and 5 expunges: {complete} {figures.brought}")


def _quiet(percent: float, stats: dict[str, Any]) -> None:
    pass
