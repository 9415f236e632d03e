"""The worker's way back: reports to the coordinator's HTTP API as commands."""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx

from core.telemetry import tracing

log = logging.getLogger("consumers.coordinator_client")
RETRIED = frozenset({429, 503})  # busy or unavailable: worth asking again


class Fenced(Exception):
    """The coordinator says the task is no longer the live one: stop working on it."""


class ReportFailed(Exception):
    """The coordinator refused the report, or was unreachable or busy through every retry."""


class CoordinatorClient:
    """POSTs progress, completion and failure; retries what is worth retrying."""

    def __init__(
        self,
        base_url: str,
        token_for: Any,
        attempts: int = 5,
        timeout: float = 10.0,
        longest_wait: float = 10.0,
    ) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=timeout)
        self._token_for = token_for
        self._attempts = attempts
        self._longest_wait = longest_wait  # a Retry-After beyond it is cut to it

    def progress(self, user_id: str, task_id: str, percent: float, stats: dict[str, Any]) -> None:
        self._post(user_id, task_id, "progress", {"percent": percent, "stats": stats})

    def complete(self, user_id: str, task_id: str, stats: dict[str, Any]) -> None:
        self._post(user_id, task_id, "complete", {"stats": stats})

    def fail(self, user_id: str, task_id: str, error: str) -> None:
        self._post(user_id, task_id, "fail", {"error": error[:4000]})

    def _post(self, user_id: str, task_id: str, what: str, body: dict[str, Any]) -> None:
        # Traced: a client span whose traceparent header the API continues.
        attributes = {"sync.user_id": user_id, "sync.task_id": task_id}
        with tracing.span_under(f"report {what}", None, attributes, tracing.SpanKind.CLIENT):
            self._send(user_id, task_id, what, body)

    def _send(self, user_id: str, task_id: str, what: str, body: dict[str, Any]) -> None:
        delay = 0.2
        for attempt in range(1, self._attempts + 1):
            headers = {"Authorization": f"Bearer {self._token_for(user_id)}"}
            tracing.inject(headers)
            try:
                answer = self._http.post(
                    f"/sync/tasks/{task_id}/{what}", json=body, headers=headers
                )
            except httpx.TransportError as error:
                log.warning(
                    "report %s of %s failed (%s), attempt %d", what, task_id, error, attempt
                )
            else:
                if answer.status_code == 409:
                    raise Fenced(answer.json().get("detail", "not the live task"))
                if answer.status_code < 300:
                    return
                if answer.status_code not in RETRIED:
                    raise ReportFailed(f"{what} of {task_id}: {answer.status_code} {answer.text}")
                # Busy (the user's admission gate, a full command queue) or unavailable: the
                # report is still wanted, after the time the coordinator asks for.
                log.warning(
                    "report %s of %s answered %d, attempt %d",
                    what,
                    task_id,
                    answer.status_code,
                    attempt,
                )
                if attempt < self._attempts:
                    time.sleep(self._wait(answer, delay))
                    delay = min(delay * 2, 5.0)
                continue
            if attempt < self._attempts:
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        raise ReportFailed(f"{what} of {task_id}: coordinator unreachable or busy")

    def _wait(self, answer: httpx.Response, backoff: float) -> float:
        """Retry-After in seconds (bounded by longest_wait), else the backoff."""
        try:
            asked = float(answer.headers.get("Retry-After", ""))
        except ValueError:
            return backoff
        return min(max(asked, 0.0), self._longest_wait)

    def close(self) -> None:
        self._http.close()
