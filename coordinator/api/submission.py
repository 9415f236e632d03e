"""How a route hands a command over: to the user's queue, timed, dropped if the client leaves."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from fastapi import Request

from coordinator.api.metrics import CommandMetrics
from coordinator.bootstrap import Wiring
from coordinator.domain.commands import Command
from coordinator.service.outcomes import Outcome, StartOutcome
from coordinator.service.ports import ClientGone

T = TypeVar("T")


async def until_disconnected(request: Request, work: Awaitable[T]) -> T:
    """The result of `work`, or ClientGone (and `work` cancelled) if the client leaves first.

    A command still waiting for its user's turn is then dropped from the queue, so a storm
    of abandoned clicks leaves nothing behind; one already in a transaction still commits.
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnect(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    raise ClientGone("the client closed the connection before the answer was ready")


async def _disconnect(request: Request) -> None:
    # The route has read any body it takes, so the next message is the disconnect
    # (messages still in flight, such as an unread body, are skipped).
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def submit(
    request: Request, wiring: Wiring, metrics: CommandMetrics, name: str, command: Command
) -> Outcome:
    """The command's outcome through the user's queue, counted under `name`."""
    with metrics.timed(name) as outcome_is:
        outcome = await until_disconnected(request, wiring.coalescer.submit(command))
        outcome_is(_outcome_name(name, outcome))
    return outcome


def _outcome_name(name: str, outcome: Outcome) -> str:
    if isinstance(outcome, StartOutcome):
        if outcome.replayed:
            return "replayed"
        if outcome.reused:
            return "reused"
        return "expired_and_started" if outcome.expired_task_id else "started"
    return "progressed" if name == "progress" else outcome.status
