"""New mail to visible, and the cost of watching, with one `syncctl watch` over many accounts.

    .venv/bin/python -m bench.mail_watch [--accounts 500] [--samples 40] [--runs 3] [--idle 60]

A private Dovecot holds `--accounts` empty mailboxes, each registered as a user's account; the
system runs `syncctl api`, `relay`, `work` (imap executor) and one `syncctl watch`, which keeps
IDLE on every INBOX. Per run:

- **new mail to visible**: `--samples` times, APPEND one message to a random account's INBOX
  and poll `GET /mail/messages?limit=1` for that user (every 10 ms) until it lists the message:
  the watcher's notice, the StartRequested, Kafka, the worker's sync and its commit. The floor,
  measured in the same run: a raw IMAP APPEND of a message and a raw `UID FETCH` of it
  (APPENDUID) over one logged-in imaplib connection. p50 and p99 of each run, medians of the
  runs; target p99 <= 2 s.
- **cost of watching**: over `--idle` seconds with nothing arriving, the watcher's RSS and CPU
  time (utime + stime from /proc) against a second watcher, started the same way on a database
  with no accounts (the baseline: the interpreter, its libraries and the lease ticks), divided
  by the number of accounts; targets <= 200 KB and <= 0.01 % of a core per account.

Dovecot runs with raised process limits so it can hold every IDLE session, and looks at a
mailbox every second when inotify is out of instances (`EXTRA`).
"""

from __future__ import annotations

import argparse
import imaplib
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from uuid import uuid4

import httpx
from sqlalchemy import create_engine

from bench.common.services import fresh_database, stop_process
from bench.end_to_end.stack import consumer_settings, new_topic, spawn, start_backends
from consumers.mail.accounts import AccountStore, ImapAccount
from consumers.mail.password_box import PasswordBox, new_key
from coordinator.api.auth.tokens import issue_token
from coordinator.dev.dovecot import Dovecot, start_dovecot
from coordinator.dev.embedded import free_port
from coordinator.dev.processes import wait_ready

VISIBLE_TARGET = 2.0  # seconds, p99
RSS_TARGET_KB = 200.0
CPU_TARGET_PERCENT = 0.01
# A process per IMAP session (Dovecot's imap serves one connection per process here). Each
# IDLE process wants an inotify instance, and the kernel allows 128 per user by default
# (fs.inotify.max_user_instances; every mailbox here belongs to one uid): past that Dovecot
# looks at the mailbox every mailbox_idle_check_interval instead (30 s by default, 1 s here).
EXTRA = """
default_process_limit = 2000
default_client_limit = 4000
service imap {
  process_limit = 1500
}
mailbox_idle_check_interval = 1 secs
"""


def log(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)


def message(tag: str) -> bytes:
    return (
        f"From: Bench <bench@example.org>\r\nTo: someone@example.org\r\n"
        f"Subject: {tag}\r\nMessage-ID: <{tag}@example.org>\r\n\r\nnew mail\r\n"
    ).encode()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class Watched:
    """api, relay, work and watch over `accounts` registered Dovecot logins."""

    def __init__(self, stack: ExitStack, tmp: Path, dovecot: Dovecot, accounts: int) -> None:
        backends = start_backends(stack, tmp, tmp, log)
        self.server = backends.server
        self.database = fresh_database(stack, backends.server, "bench_watch")
        self.secret, port = uuid4().hex * 2, free_port()
        self.api_url = f"http://127.0.0.1:{port}"
        key = new_key()
        self.settings = {
            **consumer_settings(backends, self.database, new_topic(backends.bootstrap, "watch")),
            "SYNC_JWT_SECRET": self.secret,
            "SYNC_API_PORT": str(port),
            "SYNC_API_URL": self.api_url,
            "SYNC_WORKER_EXECUTOR": "imap",
            "SYNC_MAIL_KEY": key,
            "SYNC_MAIL_ALLOWED_HOSTS": "127.0.0.1",  # the private Dovecot
            "SYNC_MAIL_REPORT_EVERY_SECONDS": "5",
        }
        log(f"registering {accounts} accounts ...")
        engine = create_engine(self.database)
        store = AccountStore(engine, PasswordBox(key))
        self.logins: dict[str, ImapAccount] = {}
        for n in range(accounts):
            user, name, password = f"bench-{n:04d}-{uuid4().hex[:6]}", f"w{n:04d}", uuid4().hex
            dovecot.add_user(name, password)
            login = ImapAccount(dovecot.host, dovecot.port, "none", name, password)
            store.put(user, login)
            self.logins[user] = login
        engine.dispose()
        self._stack, self._tmp = stack, tmp
        api = spawn(stack, "api", self.settings, tmp / "api.log")
        wait_ready(f"{self.api_url}/readyz", api, 60, tmp / "api.log")
        spawn(stack, "relay", self.settings, tmp / "relay.log")
        spawn(stack, "work", self.settings, tmp / "work.log")
        self.watcher = spawn(stack, "watch", self.settings, tmp / "watch.log")
        empty = fresh_database(stack, backends.server, "bench_watch_empty")
        self.baseline = spawn(
            stack, "watch", {**self.settings, "SYNC_DATABASE_URL": empty}, tmp / "baseline.log"
        )

    def visible(self, user: str, subject: str, timeout: float = 60) -> None:
        headers = {"Authorization": f"Bearer {issue_token(user, self.secret, 600)}"}
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.api_url, headers=headers) as client:
            while time.monotonic() < deadline:
                listed = client.get("/mail/messages", params={"limit": 1}).json()["messages"]
                if listed and listed[0]["subject"] == subject:
                    return
                time.sleep(0.01)
        raise SystemExit(f"{subject} not listed for {user} within {timeout} s; see the logs")


def append(login: ImapAccount, subject: str) -> None:
    imap = imaplib.IMAP4(login.host, login.port)
    imap.login(login.username, login.password)
    imap.append("INBOX", None, None, message(subject))
    imap.logout()


def sessions(dovecot: Dovecot) -> int:
    listing = subprocess.run(
        ["doveadm", "-c", str(dovecot.config_path()), "who", "-1"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sum(1 for line in listing.splitlines()[1:] if " imap " in f" {line} ")


def new_mail_to_visible(system: Watched, samples: int) -> list[float]:
    seconds = []
    users = list(system.logins)
    for n in range(samples):
        user = random.choice(users)
        subject = f"visible-{n}-{uuid4().hex[:8]}"
        started = time.monotonic()
        append(system.logins[user], subject)
        system.visible(user, subject)
        seconds.append(time.monotonic() - started)
        time.sleep(0.2)
    return seconds


def floor(login: ImapAccount, samples: int) -> list[float]:
    """A raw APPEND and a raw UID FETCH of the appended message, one connection."""
    imap = imaplib.IMAP4(login.host, login.port)
    imap.login(login.username, login.password)
    imap.select("INBOX")
    seconds = []
    for n in range(samples):
        started = time.monotonic()
        answer = imap.append("INBOX", None, None, message(f"floor-{n}-{uuid4().hex[:8]}"))
        uid = answer[1][0].split(b"APPENDUID ")[1].split(b" ")[1].rstrip(b"]")
        imap.uid("FETCH", uid.decode(), "(BODY.PEEK[])")
        seconds.append(time.monotonic() - started)
    imap.logout()
    return seconds


def usage(pid: int) -> tuple[float, float]:
    """(RSS in KB, CPU seconds so far) of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = float(next(x for x in status.splitlines() if x.startswith("VmRSS:")).split()[1])
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return rss, ticks / 100  # USER_HZ


def idle_cost(system: Watched, seconds: float) -> tuple[float, float, float, float]:
    """(RSS KB, CPU % of a core) of the watcher and of the baseline over `seconds`."""
    cpu0 = usage(system.watcher.pid)[1]
    base_cpu0 = usage(system.baseline.pid)[1]
    time.sleep(seconds)
    rss1, cpu1 = usage(system.watcher.pid)
    base_rss1, base_cpu1 = usage(system.baseline.pid)
    return (
        rss1,
        100 * (cpu1 - cpu0) / seconds,
        base_rss1,
        100 * (base_cpu1 - base_cpu0) / seconds,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=500)
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle", type=float, default=60)
    args = parser.parse_args()
    with ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="bench-watch-"))
        log(f"logs and data in {tmp}")
        stack.callback(shutil.rmtree, tmp / "dovecot", True)
        dovecot = start_dovecot(tmp / "dovecot", extra_config=EXTRA)
        stack.callback(dovecot.stop)
        system = Watched(stack, tmp, dovecot, args.accounts)
        log("waiting for a session per account ...")
        deadline = time.monotonic() + 300
        while sessions(dovecot) < args.accounts:
            if time.monotonic() > deadline:
                raise SystemExit(f"only {sessions(dovecot)} sessions; see watch.log")
            time.sleep(1)
        log("warming up: the worker joins its group ...")
        warm = next(iter(system.logins))
        append(system.logins[warm], "warm-up")
        system.visible(warm, "warm-up", timeout=180)
        visible: list[list[float]] = []
        floors: list[list[float]] = []
        costs = []
        floor_login = ImapAccount(dovecot.host, dovecot.port, "none", "floor", uuid4().hex)
        dovecot.add_user(floor_login.username, floor_login.password)
        for run in range(1, args.runs + 1):
            floors.append(floor(floor_login, args.samples))
            visible.append(new_mail_to_visible(system, args.samples))
            time.sleep(5)  # the syncs end, then nothing arrives
            costs.append(idle_cost(system, args.idle))
            log(
                f"run {run}: visible p50 {percentile(visible[-1], 0.5):.3f}s "
                f"p99 {percentile(visible[-1], 0.99):.3f}s; floor p50 "
                f"{percentile(floors[-1], 0.5) * 1000:.1f}ms; watcher RSS "
                f"{costs[-1][0] / 1024:.1f} MB CPU {costs[-1][1]:.3f}% (baseline "
                f"{costs[-1][2] / 1024:.1f} MB {costs[-1][3]:.3f}%)"
            )
        report(args, visible, floors, costs, sessions(dovecot))
        stop_process(system.baseline)
    return 0


def report(
    args: argparse.Namespace,
    visible: list[list[float]],
    floors: list[list[float]],
    costs: list[tuple[float, float, float, float]],
    live_sessions: int,
) -> None:
    def median_of(values: list[list[float]], share: float) -> float:
        return statistics.median(percentile(run, share) for run in values)

    p50, p99 = median_of(visible, 0.5), median_of(visible, 0.99)
    f50, f99 = median_of(floors, 0.5), median_of(floors, 0.99)
    rss = statistics.median((c[0] - c[2]) / args.accounts for c in costs)
    cpu = statistics.median(max(0.0, c[1] - c[3]) / args.accounts for c in costs)
    print()
    print(
        f"{args.accounts} accounts watched by one `syncctl watch` ({live_sessions} IDLE sessions "
        f"at the end), {args.samples} samples per run, medians of {args.runs} runs"
    )
    print(
        f"  raw APPEND + UID FETCH (floor)     p50 {f50 * 1000:8.1f} ms   p99 {f99 * 1000:8.1f} ms"
    )
    verdict = "ok" if p99 <= VISIBLE_TARGET else "MISS"
    print(
        f"  APPEND -> GET /mail/messages      p50 {p50 * 1000:8.1f} ms   p99 {p99 * 1000:8.1f} ms"
        f"   ({p50 / f50:.0f}x / {p99 / f99:.0f}x the floor; target p99 <= "
        f"{VISIBLE_TARGET:.0f} s: {verdict})"
    )
    print(
        f"  watcher RSS per idle account      {rss:8.1f} KB"
        f"   (target <= {RSS_TARGET_KB:.0f} KB: {'ok' if rss <= RSS_TARGET_KB else 'MISS'})"
    )
    print(
        f"  watcher CPU per idle account      {cpu:8.5f} % of a core over {args.idle:.0f} s"
        f"   (target <= {CPU_TARGET_PERCENT} %: "
        f"{'ok' if cpu <= CPU_TARGET_PERCENT else 'MISS'})"
    )
    whole = statistics.median(c[0] for c in costs) / 1024
    base = statistics.median(c[2] for c in costs) / 1024
    print(f"  (watcher RSS {whole:.1f} MB, baseline watcher with no accounts {base:.1f} MB)")
