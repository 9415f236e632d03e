"""Per-user single flight with group commit, in front of the handlers.

In one process at most one transaction per user is in flight. A user's commands that arrive
meanwhile wait in memory, holding no thread and no connection, and the next transaction takes
them all (see `handle_batch`), on the event loop. Transactions in flight are bounded process-wide,
so a storm of one user, or of many, leaves pooled connections for everyone else; a slot is
handed out in the order asked, and each user asks for one at a time, so a busy user cannot
jump the line.

Traced (see core/telemetry/tracing.py), each command has a span under its request's,
from its arrival to its answer, and its events carry that span's traceparent; the batch's
transaction span is the child of the first command's span and links the others.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from coordinator.service.handlers import Dependencies, handle_batch
from coordinator.service.outcomes import Outcome
from coordinator.service.ports import QueueFull
from core.domain.commands import Command
from core.telemetry import incoming_trace, tracing


@dataclass(frozen=True)
class CoalescerLimits:
    """How many commands may wait and how many transactions may run."""

    waiting_per_user: int = 1000
    transactions_in_flight: int = 16
    batch_size: int = 256
    retry_after_seconds: int = 1


@dataclass
class Ticket:
    """A command in its user's line; `answer` resolves to its outcome or rejection."""

    command: Command
    answer: asyncio.Future[Outcome]
    behind_others: bool  # a transaction of this user was already on its way
    taken: bool = False
    span: tracing.Span | None = None  # the command's span, when traced


@dataclass
class _UserLine:
    waiting: deque[Ticket] = field(default_factory=deque)
    drain: asyncio.Task[None] | None = None


class CommandCoalescer:
    """`await submit(command)` answers like `handle(command)`, one transaction per batch."""

    def __init__(
        self,
        deps: Dependencies,
        limits: CoalescerLimits,
        on_batch: Callable[[int], None] = lambda size: None,
    ) -> None:
        self._deps = deps
        self._limits = limits
        self._on_batch = on_batch
        self._lines: dict[str, _UserLine] = {}
        self._slots = asyncio.Semaphore(limits.transactions_in_flight)

    @property
    def waiting(self) -> int:
        """Commands queued in this process, not yet taken into a transaction."""
        return sum(len(line.waiting) for line in self._lines.values())

    async def submit(self, command: Command) -> Outcome:
        """The command's outcome; its rejection, or its batch's store error, is raised."""
        ticket = self.enqueue(command)
        try:
            return await ticket.answer
        except asyncio.CancelledError:
            self.withdraw(ticket)
            raise

    def enqueue(self, command: Command) -> Ticket:
        """Put the command in its user's line, or raise QueueFull."""
        line = self._lines.get(command.user_id)
        if line is None:
            line = self._lines[command.user_id] = _UserLine()
        if len(line.waiting) >= self._limits.waiting_per_user:
            raise QueueFull(
                f"{len(line.waiting)} commands of this user already wait in this process; "
                "retry shortly",
                self._limits.retry_after_seconds,
            )
        loop = asyncio.get_running_loop()
        span = _command_span(command)
        traceparent = tracing.traceparent_of(span) if span is not None else incoming_trace.current()
        if traceparent and traceparent != command.meta.traceparent:
            # Untraced, the caller's own trace context is carried (incoming_trace.py).
            command = replace(command, meta=replace(command.meta, traceparent=traceparent))
        ticket = Ticket(command, loop.create_future(), line.drain is not None, span=span)
        line.waiting.append(ticket)
        if line.drain is None:
            line.drain = loop.create_task(self._drain(command.user_id, line))
        return ticket

    def withdraw(self, ticket: Ticket) -> None:
        """The caller is gone: a command not yet taken leaves no trace in any batch."""
        ticket.answer.cancel()
        tracing.finish(ticket.span, "the caller went away")
        if not ticket.taken:
            self._lines[ticket.command.user_id].waiting.remove(ticket)

    async def _drain(self, user_id: str, line: _UserLine) -> None:
        """Run this user's batches one after another until nobody waits."""
        try:
            while line.waiting:
                async with self._slots:
                    batch = self._take(line)
                    if not batch:
                        continue
                    self._on_batch(len(batch))
                    commands = [w.command for w in batch]
                    try:
                        with _transaction_span(user_id, commands):
                            answers = await handle_batch(commands, self._deps)
                    except Exception as error:
                        answers = [error] * len(batch)
                for ticket, answer in zip(batch, answers, strict=True):
                    _settle(ticket.answer, answer)
                    tracing.finish(ticket.span, answer if isinstance(answer, Exception) else None)
        finally:
            line.drain = None
            while line.waiting:  # only when cancelled at shutdown: nobody is left hanging
                line.waiting.popleft().answer.cancel()
            del self._lines[user_id]

    def _take(self, line: _UserLine) -> list[Ticket]:
        batch: list[Ticket] = []
        while line.waiting and len(batch) < self._limits.batch_size:
            waiting = line.waiting.popleft()
            waiting.taken = True
            batch.append(waiting)
        return batch


def _settle(answer: asyncio.Future[Outcome], result: Outcome | Exception) -> None:
    if answer.done():  # its caller went away while the transaction ran
        return
    if isinstance(result, Exception):
        answer.set_exception(result)
    else:
        answer.set_result(result)


def _command_span(command: Command) -> tracing.Span | None:
    """The command's span under the current (request) span; None when tracing is off."""
    if not tracing.enabled():
        return None
    attributes = {
        "sync.user_id": command.user_id,
        "sync.correlation_id": command.meta.correlation_id,
    }
    task_id = getattr(command, "task_id", None)
    if task_id:
        attributes["sync.task_id"] = task_id
    return tracing.start_span(f"command {type(command).__name__}", attributes=attributes)


def _transaction_span(user_id: str, commands: Sequence[Command]) -> Any:
    return tracing.span_in_batch(
        "command transaction",
        (c.meta.traceparent for c in commands),
        {"sync.user_id": user_id, "sync.batch_size": len(commands)},
    )
