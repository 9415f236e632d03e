"""One click and its sync make one connected trace across the API, relay, projector, worker.

Each process exports with the real OTLP/HTTP exporter to an in-test collector on a loopback
port (tests/support/otlp_collector.py), which keeps the spans in memory for the assertions.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from coordinator.dev.embedded import free_port
from tests.e2e.stack import running_stack
from tests.e2e.test_sync_lifecycle import warm_up, watch_until
from tests.support.otlp_collector import CollectedSpan, Collector, running_collector
from tests.support.random_refs import random_user

SERVICES = {"sync-api", "sync-relay", "sync-projector", "sync-worker"}
TRACE, CALLER_SPAN = "ab" * 16, "cd" * 8
CLICK_ID = "click-traced-1"


def one_trace(collector: Collector, trace_id: str) -> list[CollectedSpan]:
    return [s for s in collector.spans() if s.trace_id == trace_id]


def unconnected(spans: list[CollectedSpan]) -> list[CollectedSpan]:
    """Spans whose parent is neither in the trace nor the caller's span."""
    ids = {s.span_id for s in spans} | {CALLER_SPAN}
    return [s for s in spans if s.parent_id not in ids]


def under(spans: list[CollectedSpan], top: CollectedSpan) -> set[str]:
    """Ids of `top` and every span below it."""
    found = {top.span_id}
    while True:
        more = {s.span_id for s in spans if s.parent_id in found} - found
        if not more:
            return found
        found |= more


def wait_for_trace(collector: Collector, trace_id: str, timeout: float = 30) -> list[CollectedSpan]:
    """The trace once every process has exported its part and the sync's report is in."""
    deadline = time.monotonic() + timeout
    spans: list[CollectedSpan] = []
    while time.monotonic() < deadline:
        spans = one_trace(collector, trace_id)
        names = {s.name for s in spans}
        complete = "report complete" in names and "POST /sync/tasks/{task_id}/complete" in names
        if complete and {s.service for s in spans} >= SERVICES and not unconnected(spans):
            # The SyncCompleted event's record reaches the projector last.
            projected = [s for s in spans if s.name == "projector apply"]
            if len(projected) >= 2:
                return spans
        time.sleep(0.2)
    raise AssertionError(
        f"trace {trace_id} incomplete after {timeout}s: "
        f"{sorted((s.service, s.name) for s in spans)}; unconnected: {unconnected(spans)}"
    )


def test_click_and_its_sync_make_one_connected_trace(
    database_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    worker_log = tmp_path / "worker.log"
    with (
        running_collector(free_port()) as collector,
        running_stack(
            database_url,
            kafka_bootstrap,
            components=("relay", "project"),
            extra_env=collector.env,
            demo_messages="20",
            demo_pace="20",
        ) as stack,
        open(worker_log, "wb") as worker_stderr,
    ):
        stack.start("work", "work", worker_stderr, log_format="json")
        warm_up(stack)
        user = random_user("traced")
        caller = f"00-{TRACE}-{CALLER_SPAN}-01"
        answer = httpx.post(
            f"{stack.api.base_url}/sync/smart",
            headers=stack.api.headers(user, traceparent=caller, **{"X-Request-ID": CLICK_ID}),
        )
        assert answer.status_code == 202, answer.text
        watch_until(stack, user, lambda s: s["status"] == "completed")
        spans = wait_for_trace(collector, TRACE)

    by_name = {s.name: s for s in spans}
    request = by_name["POST /sync/smart"]
    assert request.parent_id == CALLER_SPAN, "the caller's traceparent is continued"
    command = by_name["command StartRequested"]
    assert command.parent_id in under(spans, request)
    transactions = [s for s in spans if s.name == "command transaction"]
    assert [t.parent_id for t in transactions].count(command.span_id) == 1
    publishes = [s for s in spans if s.name.endswith(" publish")]
    assert {s.service for s in publishes} == {"sync-relay"}
    assert any(p.parent_id == command.span_id for p in publishes), "SyncStarted's record"
    run = by_name["sync run"]
    assert run.service == "sync-worker" and run.parent_id in {p.span_id for p in publishes}
    report = by_name["report complete"]
    assert report.parent_id == run.span_id
    assert by_name["POST /sync/tasks/{task_id}/complete"].parent_id == report.span_id
    completion = by_name["command CompleteSync"]
    assert completion.parent_id in under(spans, by_name["POST /sync/tasks/{task_id}/complete"])
    assert {s.service for s in spans} >= SERVICES
    assert unconnected(spans) == []

    # The worker's JSON log lines about the task name its trace, click, user and task.
    lines = [json.loads(line) for line in worker_log.read_text().splitlines()]
    about = [line for line in lines if line.get("user_id") == user]
    messages = [line["message"] for line in about]
    assert any(m.endswith(": started") for m in messages), messages
    assert any(": completed" in m for m in messages), messages
    task_id = run.attributes["sync.task_id"]
    for line in about:
        assert (line["trace_id"], line["task_id"]) == (TRACE, task_id)
        assert line["correlation_id"] == CLICK_ID
