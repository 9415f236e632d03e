"""How a route hands a command over: to the user's queue, timed, dropped if the client leaves."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import Receive

from coordinator.api.metrics import CommandMetrics
from coordinator.bootstrap import Wiring
from coordinator.service.coalescer import CommandCoalescer
from coordinator.service.outcomes import Outcome, StartOutcome
from coordinator.service.ports import ClientGone
from core.domain.commands import Command
from core.telemetry.logs import bind


async def submit(
    receive: Receive, wiring: Wiring, metrics: CommandMetrics, name: str, command: Command
) -> Outcome:
    """The command's outcome through the user's queue, counted under `name`."""
    bind(user_id=command.user_id, task_id=getattr(command, "task_id", None))
    with metrics.timed(name) as outcome_is:
        outcome = await _answer(receive, wiring.coalescer, command)
        outcome_is(_outcome_name(name, outcome))
    return outcome


async def _answer(receive: Receive, coalescer: CommandCoalescer, command: Command) -> Outcome:
    """The outcome, or ClientGone if the client leaves while the command waits its turn.

    A command waiting behind its user's running transaction is dropped from the queue when
    the client leaves, so a storm of abandoned clicks leaves nothing behind. A command that
    goes straight into a transaction is not watched: every extra step on the event loop
    is paid by every other user's click while a storm keeps the loop busy.
    """
    ticket = coalescer.enqueue(command)
    watcher = asyncio.ensure_future(_disconnect(receive)) if ticket.behind_others else None
    try:
        if watcher is None:
            return await ticket.answer
        either: list[asyncio.Future[Any]] = [ticket.answer, watcher]
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        coalescer.withdraw(ticket)
        raise
    finally:
        if watcher is not None:
            watcher.cancel()
    if ticket.answer.done():
        return ticket.answer.result()
    coalescer.withdraw(ticket)
    raise ClientGone("the client closed the connection before its turn came")


async def _disconnect(receive: Receive) -> None:
    # The route has read any body it takes, so the next message is the disconnect
    # (messages still in flight, such as an unread body, are skipped).
    while (await receive())["type"] != "http.disconnect":
        pass


def _outcome_name(name: str, outcome: Outcome) -> str:
    if isinstance(outcome, StartOutcome):
        if outcome.replayed:
            return "replayed"
        if outcome.outcome == "queued":
            return "queued"
        if outcome.reused:
            return "reused"
        return "expired_and_started" if outcome.expired_task_id else "started"
    return "progressed" if name == "progress" else outcome.status
