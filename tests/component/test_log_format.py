"""JSON log lines carry the ids of the work they are about; text lines stay as they were."""

from __future__ import annotations

import json
import logging
import sys

from opentelemetry.sdk.trace import TracerProvider

from core.telemetry.logs import TEXT_FORMAT, JsonFormatter, log_context


def record(message: str, *args: object, exc: bool = False) -> logging.LogRecord:
    info = sys.exc_info() if exc else None
    return logging.LogRecord(
        "consumers.sync_worker", logging.INFO, __file__, 1, message, args, info
    )


def test_a_line_about_a_task_names_its_ids_and_its_trace() -> None:
    tracer = TracerProvider().get_tracer("test")
    with (
        tracer.start_as_current_span("sync run") as span,
        log_context(correlation_id="req-1", user_id="alice", task_id="sync_1"),
    ):
        line = json.loads(JsonFormatter().format(record("task %s: started", "sync_1")))
    ctx = span.get_span_context()
    assert line["message"] == "task sync_1: started"
    assert (line["level"], line["logger"]) == ("INFO", "consumers.sync_worker")
    assert line["trace_id"] == f"{ctx.trace_id:032x}"
    assert line["span_id"] == f"{ctx.span_id:016x}"
    assert (line["correlation_id"], line["user_id"], line["task_id"]) == (
        "req-1",
        "alice",
        "sync_1",
    )


def test_ids_end_with_their_block_and_none_are_made_up() -> None:
    with log_context(user_id="alice", task_id=None):
        inside = json.loads(JsonFormatter().format(record("x")))
    outside = json.loads(JsonFormatter().format(record("y")))
    assert inside["user_id"] == "alice" and "task_id" not in inside
    assert not {"user_id", "trace_id", "correlation_id"} & set(outside)


def test_an_exception_is_one_json_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        text = JsonFormatter().format(record("failed", exc=True))
    assert "\n" not in text
    assert "ValueError: boom" in json.loads(text)["exception"]


def test_text_lines_keep_the_dev_format() -> None:
    line = logging.Formatter(TEXT_FORMAT).format(record("task %s: started", "sync_1"))
    assert line.endswith("INFO consumers.sync_worker: task sync_1: started")
