"""Full IMAP sync through the worker against a raw imapclient loop, in the same run; then
syncs of the large mailbox that changed little against the server's own round trips.

    .venv/bin/python -m bench.mail_sync [--messages 10000] [--large 100000] [--runs 3]

A private Dovecot holds two mailboxes written as maildir files. Each run fetches the
`--messages` mailbox twice, interleaved: a raw loop (log in, SELECT, UID FETCH BODY.PEEK[] in
batches of SYNC_MAIL_BATCH_SIZE, discard) and a full sync through the system (`syncctl api`,
`relay` and `work` with the imap executor, a click with force_full=true for a fresh user whose
account names that mailbox). The executor's rate is messages / its own `seconds` stat (login to
the last commit); the click-to-SyncCompleted rate includes delivery over Kafka. Peak RSS is the
worker process's VmHWM: one worker for the `--runs` syncs of the small mailbox, a fresh one for
one sync of the `--large` mailbox. Target: executor rate >= 0.6 of the raw rate. The large
mailbox's click also times the first batch: from the POST until GET /mail/messages lists a
message (target <= 2 s; a first sync comes down from the newest). incremental.py describes the
no-change and few-changes figures (target: within 3x of the raw round trips).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import psycopg
from imapclient import IMAPClient
from sqlalchemy import create_engine

from bench.common.services import fresh_database, libpq, stop_process
from bench.end_to_end.stack import (
    consumer_settings,
    new_topic,
    spawn,
    start_backends,
)
from bench.mail_sync import incremental
from bench.mail_sync.seed import seed_maildir
from consumers.mail.accounts import ImapAccount
from consumers.mail.password_box import new_key
from coordinator.api.auth.tokens import issue_token
from coordinator.dev.dovecot import start_dovecot
from coordinator.dev.embedded import free_port
from coordinator.dev.processes import wait_ready

BATCH = 200
TARGET = 0.6
FIRST_VISIBLE = 2.0  # seconds from the click to the first message listed
FINISHED = (
    "SELECT event_type, data FROM events WHERE stream_id = %s AND event_type IN "
    "('SyncCompleted', 'SyncFailed')"
)


def log(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)


def raw_fetch(account: ImapAccount, unparsed: bool = False) -> float:
    """Messages per second fetching every message's bytes and discarding them; `unparsed`:
    through imapclient's imaplib connection, its answers not parsed (the transport alone)."""
    client = IMAPClient(account.host, account.port, ssl=False, timeout=600)
    started = time.monotonic()
    client.login(account.username, account.password)
    client.select_folder("INBOX", readonly=True)
    uids = sorted(client.search("ALL"))
    for start in range(0, len(uids), BATCH):
        batch = uids[start : start + BATCH]
        if unparsed:
            client._imap.uid("FETCH", ",".join(map(str, batch)), "(BODY.PEEK[])")
        else:
            client.fetch(batch, [b"BODY.PEEK[]"])
    elapsed = time.monotonic() - started
    client.logout()
    return len(uids) / elapsed


class System:
    """`syncctl api`, `relay` and `work` (imap executor) on a fresh database and topic."""

    def __init__(self, stack: ExitStack, tmp: Path) -> None:
        backends = start_backends(stack, tmp, tmp, log)
        self.database = fresh_database(stack, backends.server, "bench_mail")
        self.secret, port = uuid4().hex * 2, free_port()
        self.api_url = f"http://127.0.0.1:{port}"
        self.settings = {
            **consumer_settings(backends, self.database, new_topic(backends.bootstrap, "mail")),
            "SYNC_JWT_SECRET": self.secret,
            "SYNC_API_PORT": str(port),
            "SYNC_API_URL": self.api_url,
            "SYNC_WORKER_EXECUTOR": "imap",
            "SYNC_MAIL_KEY": new_key(),
            "SYNC_MAIL_ALLOWED_HOSTS": "127.0.0.1",  # the private Dovecot
            "SYNC_MAIL_BATCH_SIZE": str(BATCH),
        }
        self._stack, self._tmp = stack, tmp
        api = spawn(stack, "api", self.settings, tmp / "api.log")
        wait_ready(f"{self.api_url}/readyz", api, 60, tmp / "api.log")
        spawn(stack, "relay", self.settings, tmp / "relay.log")
        self.worker = spawn(stack, "work", self.settings, tmp / "work.log")

    def new_worker(self) -> None:
        stop_process(self.worker)
        self.worker = spawn(self._stack, "work", self.settings, self._tmp / "work.log")

    def peak_rss_mb(self) -> float:
        status = Path(f"/proc/{self.worker.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024

    def full_sync(
        self, account: ImapAccount, timeout: float = 900, user: str | None = None
    ) -> tuple[dict[str, Any], float]:
        """A fresh user's full sync of `account`: the completion stats and the wall time; the
        seconds until GET /mail/messages listed a message go in the stats as `first_visible`."""
        user = user or f"bench-{uuid4().hex[:10]}"
        headers = {"Authorization": f"Bearer {issue_token(user, self.secret, 3600)}"}
        body = {
            "host": account.host,
            "port": account.port,
            "security": "none",
            "username": account.username,
            "password": account.password,
        }
        httpx.put(f"{self.api_url}/accounts/imap", json=body, headers=headers).raise_for_status()
        started = time.monotonic()
        httpx.post(f"{self.api_url}/sync/smart?force_full=true", headers=headers).raise_for_status()
        deadline = started + timeout
        first_visible = None
        with psycopg.connect(libpq(self.database), autocommit=True) as conn:
            while time.monotonic() < deadline:
                if first_visible is None:
                    listed = httpx.get(f"{self.api_url}/mail/messages?limit=1", headers=headers)
                    if listed.json()["messages"]:
                        first_visible = time.monotonic() - started
                row = conn.execute(FINISHED, (f"UserSync-{user}",)).fetchone()
                if row is not None:
                    if row[0] != "SyncCompleted":
                        raise SystemExit(f"the sync failed: {row[1]}")
                    return {**row[1]["stats"], "first_visible": first_visible, "user": user}, (
                        time.monotonic() - started
                    )
                if self.worker.poll() is not None:
                    raise SystemExit("the worker exited; see work.log")
                time.sleep(0.05)
        raise SystemExit(f"no SyncCompleted within {timeout} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="bench-mail-"))
        log(f"logs and data in {tmp}")
        # The mailboxes (some 225 MB) go when the run ends; the logs stay.
        stack.callback(shutil.rmtree, tmp / "dovecot", True)
        dovecot = start_dovecot(tmp / "dovecot")
        stack.callback(dovecot.stop)
        log(f"writing mailboxes of {args.messages:,} and {args.large:,} messages ...")
        small = seed_maildir(dovecot, "small", args.messages)
        large = seed_maildir(dovecot, "large", args.large)
        system = System(stack, tmp)
        log("warming up: the worker joins its group ...")
        tiny = seed_maildir(dovecot, "tiny", 10)
        system.full_sync(tiny)
        raw_rates, executor_rates, click_rates, unparsed_rates = [], [], [], []
        for run in range(1, args.runs + 1):
            raw_rates.append(raw_fetch(small))
            unparsed_rates.append(raw_fetch(small, unparsed=True))
            stats, wall = system.full_sync(small)
            assert stats["fetched"] == args.messages, stats
            executor_rates.append(stats["fetched"] / stats["seconds"])
            click_rates.append(stats["fetched"] / wall)
            log(
                f"run {run}: raw {raw_rates[-1]:,.0f} msg/s (unparsed {unparsed_rates[-1]:,.0f}), "
                f"executor {executor_rates[-1]:,.0f} msg/s, click to SyncCompleted "
                f"{click_rates[-1]:,.0f} msg/s"
            )
        small_rss = system.peak_rss_mb()
        system.new_worker()
        system.full_sync(tiny)  # the fresh worker joins; its peak so far is its baseline
        stats, _ = system.full_sync(large)
        assert stats["fetched"] == args.large, stats
        large_rss = system.peak_rss_mb()
        log(f"large mailbox synced: {stats}")
        engine = create_engine(system.database)
        stack.callback(engine.dispose)
        figures = incremental.measure(
            engine, system.settings["SYNC_MAIL_KEY"], stats["user"], large, args.runs, log
        )
        report(args, raw_rates, executor_rates, click_rates, small_rss, large_rss, stats)
        print(f"  (raw FETCH answers not parsed: {statistics.median(unparsed_rates):,.0f} msg/s)")
        incremental.report(figures, args.large)
    return 0


def report(
    args: argparse.Namespace,
    raw: list[float],
    executor: list[float],
    click: list[float],
    small_rss: float,
    large_rss: float,
    large_stats: dict[str, Any],
) -> None:
    raw_m, exec_m = statistics.median(raw), statistics.median(executor)
    ratio = exec_m / raw_m
    print()
    print(f"mailbox of {args.messages:,} messages, batches of {BATCH}, medians of {args.runs}")
    print(f"  raw imapclient fetch         {raw_m:10,.0f} msg/s")
    print(
        f"  executor (full sync)         {exec_m:10,.0f} msg/s   ratio {ratio:.2f} "
        f"({'meets' if ratio >= TARGET else 'MISS:'} target {TARGET})"
    )
    print(f"  click to SyncCompleted       {statistics.median(click):10,.0f} msg/s")
    print(
        f"  {args.large:,} messages: executor "
        f"{large_stats['fetched'] / large_stats['seconds']:,.0f} msg/s"
    )
    first = large_stats["first_visible"]
    verdict = "meets" if first is not None and first <= FIRST_VISIBLE else "MISS:"
    print(
        f"  {args.large:,} messages: first batch listed by GET /mail/messages "
        f"{first if first is None else round(first, 2)} s after the click "
        f"({verdict} target {FIRST_VISIBLE} s)"
    )
    print(
        f"worker peak RSS: {small_rss:.0f} MB after {args.runs} syncs of {args.messages:,}, "
        f"{large_rss:.0f} MB after one of {args.large:,} (ratio {large_rss / small_rss:.2f})"
    )
