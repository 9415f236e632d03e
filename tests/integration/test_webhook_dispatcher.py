"""`syncctl webhooks` as a process: real PostgreSQL, broker, and an HTTP receiver that flakes.

The receiver verifies with the `standardwebhooks` package (not our code), during a secret
rotation, and checks the deprecated X-Sync-Signature too.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import Engine, text
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from consumers.webhook_dispatcher import verify
from coordinator.adapters.postgres.outbox_store import OutboxStore, RelayLeadership
from coordinator.relay.outbox_relay import OutboxRelay, RelayConfig
from coordinator.service.handlers import Dependencies, handle
from core.database import make_engine
from core.domain.commands import (
    CompleteSync,
    FailSync,
    ReportProgress,
    RequestMeta,
    StartRequested,
)
from tests.e2e.processes import process_env, spawn, stop
from tests.support.command_loop import command_store, run
from tests.support.random_refs import random_name, random_user

# Rotation in progress: the new secret first, the old one still signing too.
NEW_SECRET = "whsec_" + base64.b64encode(b"n" * 32).decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"o" * 32).decode()
SECRET = f"{NEW_SECRET} {OLD_SECRET}"
REFUSAL = b'{"error":"unknown account"}'
FLAKES = 2  # 503s per event before the receiver acknowledges it
TERMINAL = {"SyncCompleted", "SyncFailed"}


@dataclass(frozen=True)
class Request:
    event_id: str
    event_type: str
    user_id: str
    status: int
    signed_and_labelled: bool  # standardwebhooks and verify() passed; headers match the body


def standard_verified(headers: dict[str, str], body: bytes) -> bool:
    """Verified with the standardwebhooks package by a receiver on either secret."""
    try:
        for secret in (NEW_SECRET, OLD_SECRET):
            Webhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


class FlakyReceiver(ThreadingHTTPServer):
    """Answers 503 to the first FLAKES attempts per event, then 200; 400 for one user."""

    def __init__(self, reject_user: str) -> None:
        super().__init__(("127.0.0.1", 0), ReceiverHandler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}/hooks/sync"
        self.reject_user = reject_user
        self.requests: list[Request] = []
        self._lock = threading.Lock()

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        envelope = json.loads(body)
        event_id, event_type, user_id = (envelope[k] for k in ("event_id", "event_type", "user_id"))
        legacy = verify(NEW_SECRET, headers["x-sync-timestamp"], body, headers["x-sync-signature"])
        signed = legacy and standard_verified(headers, body)
        labels = (headers["webhook-id"], headers["x-sync-event-id"], headers["x-sync-event-type"])
        labelled = labels == (event_id, event_id, event_type)
        labelled &= headers["content-type"] == "application/json"
        with self._lock:
            earlier = sum(r.event_id == event_id for r in self.requests)
            status = 503 if earlier < FLAKES else 200
            if user_id == self.reject_user:
                status = 400
            self.requests.append(
                Request(event_id, event_type, user_id, status, signed and labelled)
            )
        return status

    def acked(self) -> Counter[str]:
        with self._lock:
            return Counter(r.event_id for r in self.requests if r.status == 200)

    def attempts(self, event_id: str) -> int:
        with self._lock:
            return sum(r.event_id == event_id for r in self.requests)


class ReceiverHandler(BaseHTTPRequestHandler):
    server: FlakyReceiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        headers = {k.lower(): v for k, v in self.headers.items()}
        status = self.server.answer(headers, body)
        answer = REFUSAL if status == 400 else b""
        self.send_response(status)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def receiver(reject_user: str) -> Iterator[FlakyReceiver]:
    server = FlakyReceiver(reject_user)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def relay(engine: Engine, database_url: str, bootstrap: str, topic: str) -> Iterator[None]:
    """Relay in a thread to a one-partition topic, so topic order is the order of commits."""
    stopping = threading.Event()
    config = RelayConfig(bootstrap=bootstrap, topic=topic, partitions=1, poll_seconds=0.2)
    outbox = OutboxStore(engine)
    thread = threading.Thread(
        target=OutboxRelay(config, outbox, RelayLeadership(database_url), stopping).run,
        daemon=True,
    )
    thread.start()
    try:
        yield
    finally:
        stopping.set()
        thread.join(10)


def wait_until(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@contextmanager
def dispatcher(
    database_url: str, bootstrap: str, topic: str, url: str
) -> Iterator[subprocess.Popen[bytes]]:
    process = spawn(
        "webhooks",
        database_url=database_url,
        kafka_bootstrap=bootstrap,
        kafka_topic=topic,
        webhook_group=random_name("webhooks"),
        webhook_url=url,
        webhook_secret=SECRET,
        webhook_max_backoff_seconds="0.2",
        consumer_max_poll_interval_ms="1500",
    )
    try:
        yield process
    finally:
        stop(process)


class Users:
    """Drives real syncs through the command handlers, so the events are the real ones."""

    def __init__(self, engine: Engine) -> None:
        self.store = command_store(engine)
        self.deps = Dependencies(self.store, timedelta(minutes=30), 3)
        self.meta = RequestMeta("webhook-test")

    def start(self, user: str) -> str:
        return run(handle(StartRequested(user, False, self.meta), self.deps)).task_id

    def complete(self, user: str) -> None:
        run(handle(CompleteSync(user, self.start(user), {"messages": 42}, self.meta), self.deps))

    def fail(self, user: str) -> None:
        run(handle(FailSync(user, self.start(user), "IMAP login refused", self.meta), self.deps))

    def terminal_event(self, user: str) -> str:
        (event,) = [e for e in run(self.store.read_stream(user)) if e.event_type in TERMINAL]
        return event.event_id


@pytest.fixture
def own_engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=4)
    yield engine
    engine.dispose()


def test_terminal_events_are_acknowledged_once_even_after_a_replay(
    own_engine: Engine, database_url: str, kafka_bootstrap: str
) -> None:
    users = Users(own_engine)
    rejected, done, failed, running, later = (random_user() for _ in range(5))
    # The rejected event comes first on the partition: the ones after it must still flow.
    users.complete(rejected)
    users.complete(done)
    users.fail(failed)
    task = users.start(running)
    users.start(running)  # SyncReused
    run(handle(ReportProgress(running, task, 50.0, {}, users.meta), users.deps))
    expected = {users.terminal_event(done), users.terminal_event(failed)}
    topic = random_name("events")
    with relay(own_engine, database_url, kafka_bootstrap, topic), receiver(rejected) as hooks:
        wait_until(lambda: OutboxStore(own_engine).backlog()[0] == 0)
        with dispatcher(database_url, kafka_bootstrap, topic, hooks.url) as process:
            wait_until(lambda: set(hooks.acked()) == expected)
            time.sleep(1)  # room for a duplicate or a late non-terminal event to show up
        assert process.returncode == 0, "SIGTERM should stop the dispatcher cleanly"
        assert hooks.acked() == {event_id: 1 for event_id in expected}
        assert all(hooks.attempts(e) == FLAKES + 1 for e in expected)
        assert hooks.attempts(users.terminal_event(rejected)) == 1, "a 400 is not retried"
        assert all(r.signed_and_labelled for r in hooks.requests)
        assert {r.event_type for r in hooks.requests} <= TERMINAL, "only endings are sent"
        with own_engine.connect() as conn:
            rows = conn.execute(
                text("SELECT receiver, event_id::text, attempts FROM webhook_deliveries")
            ).all()
        assert sorted(map(tuple, rows)) == sorted((hooks.url, e, FLAKES + 1) for e in expected)

        # A new group reads the topic from offset 0; the receiver must get nothing it
        # acknowledged. `later` is last on the partition, so once it is acknowledged
        # everything before it has been read.
        users.complete(later)
        with dispatcher(database_url, kafka_bootstrap, topic, hooks.url):
            wait_until(lambda: users.terminal_event(later) in hooks.acked())
        assert hooks.acked() == {e: 1 for e in {*expected, users.terminal_event(later)}}
        # A rejected event is kept with the answer, not offered again by a replay...
        refused = users.terminal_event(rejected)
        assert hooks.attempts(refused) == 1
        code, out = webhooks_command(
            database_url, hooks.url, "rejected", "list", "--format", "json"
        )
        assert code == 0
        (row,) = [r for r in json.loads(out) if r["event_id"] == refused]
        assert (row["status_code"], row["response"], row["user_id"]) == (
            400,
            REFUSAL.decode(),
            rejected,
        )
        assert (row["event_type"], row["receiver"], row["attempts"]) == (
            "SyncCompleted",
            hooks.url,
            1,
        )

        # ...but sent again by the command once the receiver is fixed.
        code, out = webhooks_command(
            database_url, hooks.url, "rejected", "resend", "--event-id", str(uuid.uuid4())
        )
        assert code == 1 and "not rejected events" in out
        hooks.reject_user = ""
        code, out = webhooks_command(
            database_url, hooks.url, "rejected", "resend", "--event-id", refused
        )
        assert code == 0, out
        assert hooks.acked()[refused] == 1 and hooks.requests[-1].signed_and_labelled
        with own_engine.connect() as conn:
            left = conn.execute(
                text("SELECT count(*) FROM webhook_rejections WHERE event_id = :e"), {"e": refused}
            ).scalar_one()
            recorded = conn.execute(
                text("SELECT count(*) FROM webhook_deliveries WHERE event_id = :e"), {"e": refused}
            ).scalar_one()
        assert (left, recorded) == (0, 1)


def webhooks_command(database_url: str, url: str, *args: str) -> tuple[int, str]:
    """`syncctl webhooks ARGS`: exit code and output."""
    result = subprocess.run(
        [sys.executable, "-m", "coordinator.cli", "webhooks", *args],
        env=process_env(
            database_url=database_url,
            webhook_url=url,
            webhook_secret=SECRET,
            webhook_max_backoff_seconds="0.2",
        ),
        capture_output=True,
        timeout=60,
    )
    return result.returncode, result.stdout.decode() + result.stderr.decode()


@pytest.mark.parametrize("unset", ["webhook_url", "webhook_secret"])
def test_refuses_to_start_without_receiver_settings(unset: str) -> None:
    settings = {
        "database_url": "postgresql+psycopg://nobody@127.0.0.1:1/none",
        "kafka_bootstrap": "127.0.0.1:1",
        "webhook_url": "http://127.0.0.1:1/hooks",
        "webhook_secret": SECRET,
    }
    del settings[unset]
    result = subprocess.run(
        [sys.executable, "-m", "coordinator.cli", "webhooks"],
        env=process_env(None, **settings),
        capture_output=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert f"SYNC_{unset.upper()}" in result.stderr.decode()


def test_refuses_a_secret_it_cannot_use() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "coordinator.cli", "webhooks"],
        env=process_env(
            database_url="postgresql+psycopg://nobody@127.0.0.1:1/none",
            kafka_bootstrap="127.0.0.1:1",
            webhook_url="http://127.0.0.1:1/hooks",
            webhook_secret=f"{NEW_SECRET} whsec_not*base64",
        ),
        capture_output=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "SYNC_WEBHOOK_SECRET: secret 2 is not whsec_" in result.stderr.decode()
