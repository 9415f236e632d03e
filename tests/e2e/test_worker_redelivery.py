"""A SyncStarted delivered again after its task finished is not run a second time."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any
from uuid import uuid4

import httpx
from sqlalchemy import Engine

from consumers.coordinator_client import CoordinatorClient
from consumers.executors import Report, TaskSpec
from consumers.sync_worker import SyncWorker
from coordinator.api.auth.tokens import issue_token
from core.domain.events import Envelope, SyncStarted
from core.kafka.event_source import Delivery
from core.report_scope import REPORT_SCOPE
from tests.e2e.conftest import started_count
from tests.e2e.processes import SECRET, Api
from tests.support.random_refs import random_user


class CountingExecutor:
    def __init__(self) -> None:
        self.runs: list[str] = []

    def run(self, task: TaskSpec, report: Report, stopping: threading.Event) -> dict[str, Any]:
        self.runs.append(task.task_id)
        report(50.0, {"half": True})
        return {"done": True}


def delivery_of(api: Api, user: str) -> Delivery:
    """The SyncStarted of a fresh click, as the worker would receive it from Kafka."""
    answer = httpx.post(f"{api.base_url}/sync/smart", headers=api.headers(user)).json()
    started = SyncStarted(
        task_id=answer["task_id"],
        sync_type=answer["sync_type"],
        started_at=datetime.fromisoformat(answer["started_at"]),
        lease_expires_at=datetime.fromisoformat(answer["lease_expires_at"]),
        reason="first_click",
        requested_by=None,
    )
    envelope = Envelope(
        str(uuid4()),
        "SyncStarted",
        2,
        f"UserSync-{user}",
        user,
        answer["version"],
        started.started_at,
        "test",
        "test",
        started,
    )
    return Delivery(0, 0, envelope)


def worker(api: Api, executor: CountingExecutor) -> SyncWorker:
    def token_for(user_id: str) -> str:
        return issue_token(user_id, SECRET, 300, scope=REPORT_SCOPE)

    return SyncWorker(executor, CoordinatorClient(api.base_url, token_for), 2, grace=5)


def wait_for(condition: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_a_finished_task_delivered_again_is_not_run_again(api: Api, engine: Engine) -> None:
    user = random_user()
    executor = CountingExecutor()
    first = worker(api, executor)
    delivery = delivery_of(api, user)
    first.take([delivery])
    wait_for(lambda: first.completed == 1)
    first.forget_finished()
    first.take([delivery])  # the same process, after a rebalance
    restarted = worker(api, executor)
    restarted.take([delivery])  # another process, after a crash before the offset commit
    wait_for(lambda: first.skipped == 1 and restarted.skipped == 1)
    first.shutdown()
    restarted.shutdown()
    assert executor.runs == [delivery.envelope.data.task_id]
    # The claim, the executor's report, the completion; the redeliveries recorded nothing.
    assert started_count(engine, user) == {
        "SyncStarted": 1,
        "SyncProgressed": 2,
        "SyncCompleted": 1,
    }
