"""Log lines as text (the dev default) or one JSON object per line, with the ids of their work.

`SYNC_LOG_FORMAT=json` gives every line `time`, `level`, `logger`, `message` and, when the
line is about a command or a task, `trace_id`, `span_id`, `correlation_id`, `user_id` and
`task_id`: the ids come from the current span and from `log_context` blocks.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

CONTEXT_FIELDS = ("correlation_id", "user_id", "task_id")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_context: ContextVar[dict[str, str]] = ContextVar("log_context", default={})  # noqa: B039


@contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Lines logged inside the block (in this thread or task) carry these ids."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v}})
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, str]:
    """The ids bound to the current task or block."""
    return dict(_context.get())


def bind(**fields: str | None) -> None:
    """Add ids for the rest of the current task (a request's task ends with the request)."""
    _context.set({**_context.get(), **{k: v for k, v in fields.items() if v}})


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            line["trace_id"] = f"{span.trace_id:032x}"
            line["span_id"] = f"{span.span_id:016x}"
        line.update(_context.get())
        line.update(getattr(record, "fields", None) or {})  # a line's own keys (request_log.py)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(log_format: str) -> None:
    """Root logging in `log_format` ('text' or 'json'), INFO and up."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
