"""Per-user admission: one user's storm of requests runs a few at a time, the rest wait idle.

Before any HTTP work, a request of a user (known from the verified bearer token, cached for
the route) who already has `active` requests running in this process waits in that user's
line, in order, holding no thread, connection or CPU; beyond `waiting` in a line the answer
is 429 with Retry-After. A request without a valid token is not held; its route refuses it.
A user alone in the API (crowd.py) may run `alone` at once; while others are about, the
user's requests also start at most `per_second` a second. Why, and the figures:
docs/decisions/per-user-gate.md and docs/decisions/user-pace.md.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Receive, Scope, Send

from coordinator.api.admission.crowd import CrowdMark
from coordinator.api.problems.documents import problem

SHARED_SECONDS = 1.0  # another user seen this recently: the process is shared


@dataclass
class UserLine:
    """One user's requests in this process: how many run, and who waits, in order."""

    running: int = 0
    waiting: deque[asyncio.Future[None]] = field(default_factory=deque)
    next_start: float = 0.0  # while shared, no request of the user starts earlier


@dataclass
class UserLines:
    """Every user's line in this process, shared with the metrics."""

    lines: dict[str, UserLine] = field(default_factory=dict)
    on_refused: Callable[[], object] = lambda: None  # counts the 429s (metrics)

    @property
    def held(self) -> int:
        """Requests waiting for their user's turn in this process."""
        return sum(len(line.waiting) for line in self.lines.values())


class UserGate:
    """ASGI middleware: at most `active` requests of one user run at once in this process."""

    def __init__(
        self,
        app: ASGIApp,
        lines: UserLines,
        known_user: Callable[[str], str | None],
        active: int,
        waiting: int,
        retry_after: int,
        exempt_paths: frozenset[str] = frozenset(),
        alone: int = 0,
        crowd: CrowdMark | None = None,
        per_second: float = 0.0,
    ) -> None:
        self.app, self._known_user = app, known_user
        self._exempt = exempt_paths
        self._active, self._waiting, self._retry_after = active, waiting, retry_after
        self._alone = max(active, alone)
        self._spacing = 1 / per_second if per_second else 0.0
        self._state = lines
        self._lines = lines.lines
        self._last_user: str | None = None
        self._crowd = crowd or CrowdMark()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gated = scope["type"] == "http" and scope["path"] not in self._exempt
        user = self._user(scope) if gated else None
        if user is None:
            await self.app(scope, receive, send)
            return
        self._seen(user)
        line = self._lines.setdefault(user, UserLine())
        if line.waiting or line.running >= self._limit():
            if len(line.waiting) >= self._waiting:
                self._state.on_refused()
                detail = (
                    f"{line.running} requests of this user are running and "
                    f"{len(line.waiting)} wait in this process; retry later"
                )
                headers = {"Retry-After": str(self._retry_after)}
                await problem(scope, 429, detail, kind="too-many-requests", headers=headers)(
                    scope, receive, send
                )
                return
            await self._turn(user, line)
        else:
            line.running += 1
        try:
            if self._spacing:
                await self._paced(line)
            await self.app(scope, receive, send)
        finally:
            self._finished(user, line)

    def _seen(self, user: str) -> None:
        if user != self._last_user:
            if self._last_user is not None:  # someone else was here before this user
                self._crowd.mark(time.monotonic() + SHARED_SECONDS)
            self._last_user = user

    def _limit(self) -> int:
        """Requests one user may have running now: more while nobody else is about."""
        return self._active if time.monotonic() < self._crowd.until() else self._alone

    async def _turn(self, user: str, line: UserLine) -> None:
        """Wait until a running request of this user lets this one in (see `_admit`)."""
        turn = asyncio.get_running_loop().create_future()
        line.waiting.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._finished(user, line)  # it was let in: its place goes to the next
            elif turn in line.waiting:
                line.waiting.remove(turn)
            raise

    async def _paced(self, line: UserLine) -> None:
        """While shared, wait for this request's start time: `spacing` after the previous."""
        now = time.monotonic()
        if now >= self._crowd.until():
            return
        start = max(now, line.next_start)
        line.next_start = start + self._spacing
        if start > now:
            await asyncio.sleep(start - now)

    def _finished(self, user: str, line: UserLine) -> None:
        line.running -= 1
        self._admit(user, line)

    def _admit(self, user: str, line: UserLine) -> None:
        """Let the next in line in, in order, while the user is under the bound."""
        limit = self._limit()
        while line.waiting and line.running < limit:
            turn = line.waiting.popleft()
            if not turn.done():
                line.running += 1
                turn.set_result(None)
        if line.running == 0 and not line.waiting:
            del self._lines[user]

    def _user(self, scope: Scope) -> str | None:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                return self._known_user(token.strip()) if scheme.lower() == "bearer" else None
        return None
