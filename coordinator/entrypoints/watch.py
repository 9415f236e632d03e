"""`syncctl watch`: IDLE on INBOX of each account this watcher holds; new mail is a command.

One asyncio loop holds every session (`consumers/mail/idle_session.py`), so a watched idle
account costs a socket and a sleeping coroutine, not a thread. Each tick (a third of the lease)
renews this watcher's lease, claims accounts up to its fair share and starts or stops sessions to
match (`consumers/mail/watch_leases.py`, docs/decisions/watcher-leases.md). A change seen on a
session becomes
`StartRequested(trigger="new_mail")` through the coordinator's command handler, the path a
click takes: with no sync running it starts one, during a sync it queues one follow-up
(`FollowUpSyncQueued`), and a storm of notices is as harmless as a storm of clicks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
from collections.abc import Callable
from dataclasses import replace
from uuid import uuid4

from consumers.mail.address_policy import allowed_hosts, resolve
from consumers.mail.idle_session import SessionLost, Timing, open_session
from consumers.mail.imap_errors import MailProblem
from consumers.mail.message_store import highest_uids
from consumers.mail.password_box import UnreadablePassword
from consumers.mail.tls_policy import client_context, refuse_plaintext
from consumers.mail.watch_leases import WatchLeases
from coordinator.bootstrap import MailWiring, Wiring, bootstrap, mail_wiring
from coordinator.entrypoints import Commands
from coordinator.service.handlers import StartOutcome, handle_batch
from core.domain.commands import RequestMeta, StartRequested
from core.settings import Settings
from core.stopping import stop_on_signals
from core.store_errors import StoreUnavailable

log = logging.getLogger("coordinator.entrypoints.watch")
CLIENT = "syncctl-watch"
FIRST_BACKOFF = 1.0
SETTLED_SECONDS = 60.0  # a session that lived this long resets the backoff
SUBMIT_ATTEMPTS = 5


class Watcher:
    """The sessions of the accounts this watcher holds, and the notices they raise."""

    def __init__(
        self,
        settings: Settings,
        wiring: Wiring,
        mail: MailWiring,
        leases: WatchLeases,
    ) -> None:
        self._settings, self._wiring, self._mail = settings, wiring, mail.engine
        self._accounts, self._tokens = mail.accounts, mail.tokens
        self._leases = leases
        self._allowed = allowed_hosts(settings.mail_allowed_hosts)
        try:  # certificates checked as the worker checks them; an unreadable bundle stops here
            self._tls = client_context(settings.mail_ca_bundle)
        except ValueError as error:
            raise SystemExit(str(error)) from None
        self._timing = Timing(
            idle_renew=settings.watch_idle_renew_seconds,
            poll=settings.watch_poll_seconds,
            timeout=settings.mail_timeout_seconds,
        )
        self._sessions: dict[str, asyncio.Task[None]] = {}
        self._submitting: set[str] = set()
        self._again: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()
        self.notices = 0

    async def run(self, stopped: asyncio.Future[None]) -> None:
        """Tick until `stopped` is done, then close every session and give the leases up."""
        interval = self._settings.watch_lease_seconds / 3
        await asyncio.to_thread(self._leases.heartbeat)  # claims start a tick after this
        try:
            while not stopped.done():
                await asyncio.wait([stopped], timeout=interval)
                if not stopped.done():
                    await self._tick()
        finally:
            await self._stop(list(self._sessions))
            await asyncio.to_thread(self._leases.resign)

    async def _tick(self) -> None:
        try:
            holding = await asyncio.to_thread(self._leases.tick)
        except StoreUnavailable as error:
            log.warning("cannot renew the watch lease (%s); stopping every session", error)
            await self._stop(list(self._sessions))
            return
        gone = [user for user in self._sessions if user not in holding.accounts]
        excess = sorted(holding.accounts)[holding.share :]
        await self._stop(gone + excess)
        if excess:
            await asyncio.to_thread(self._leases.release, excess)
        new = sorted(holding.accounts - set(self._sessions) - set(excess))
        if new:
            baselines = await asyncio.to_thread(highest_uids, self._mail, new, "INBOX")
            for user in new:
                task = asyncio.create_task(self._watch(user, baselines.get(user, 0) + 1))
                self._sessions[user] = task
            log.info("watching %d accounts (%d new)", len(self._sessions), len(new))

    async def _stop(self, users: list[str]) -> None:
        tasks = [self._sessions.pop(user) for user in users if user in self._sessions]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _watch(self, user: str, expected_uidnext: int) -> None:
        """One account's session, reconnected with backoff and jitter until cancelled."""
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            started = loop.time()
            try:
                account = await asyncio.to_thread(self._accounts.load, user)
                if account is None:
                    raise MailProblem("the account was removed")
                if account.auth == "oauth2":  # refreshed under the grant's lock if need be
                    token = await asyncio.to_thread(self._tokens.current, user)
                    account = replace(account, password=token)
                address = await asyncio.to_thread(
                    resolve, account.host, account.port, self._allowed
                )
                refuse_plaintext(account.host, account.port, account.security, self._allowed)
                session = await open_session(account, address, self._timing, self._tls)
                try:
                    # Mail that came while nobody watched (before, or between sessions).
                    if session.uidnext is not None and session.uidnext != expected_uidnext:
                        self.notice(user)
                    expected_uidnext = session.uidnext or expected_uidnext
                    await session.watch(lambda: self.notice(user))
                finally:
                    await session.close()
            except (SessionLost, MailProblem, StoreUnavailable, UnreadablePassword) as error:
                failures = 0 if loop.time() - started > SETTLED_SECONDS else failures + 1
                delay = backoff(failures, self._settings.watch_max_backoff_seconds)
                log.info("watching %s: %s; again in %.1fs", user, error, delay)
                await asyncio.sleep(delay)
                expected_uidnext = -1  # anything may have arrived meanwhile: check on reconnect

    def notice(self, user: str) -> None:
        """A change on the user's INBOX: one command at a time per user, the rest coalesced."""
        self.notices += 1
        if user in self._submitting:
            self._again.add(user)
            return
        self._submitting.add(user)
        task = asyncio.create_task(self._submit(user))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _submit(self, user: str) -> None:
        try:
            while True:
                self._again.discard(user)
                await self._start(user)
                if user not in self._again:
                    return
        finally:
            self._submitting.discard(user)

    async def _start(self, user: str) -> None:
        meta = RequestMeta(correlation_id=f"watch-{uuid4().hex[:16]}", client=CLIENT)
        command = StartRequested(user, False, meta, trigger="new_mail")
        for attempt in range(1, SUBMIT_ATTEMPTS + 1):
            try:
                [answer] = await handle_batch([command], self._wiring.deps)
            except StoreUnavailable as error:
                log.warning("new mail for %s: %s (attempt %d)", user, error, attempt)
                await asyncio.sleep(backoff(attempt, 10))
                continue
            if isinstance(answer, StartOutcome):
                log.info("new mail for %s: %s task %s", user, answer.outcome, answer.task_id)
            else:
                log.warning("new mail for %s: refused: %s", user, answer)
            return
        log.error("new mail for %s: gave up after %d attempts", user, SUBMIT_ATTEMPTS)


def backoff(failures: int, most: float, draw: Callable[[], float] = random.random) -> float:
    """Capped exponential backoff with full jitter between half and all of the step."""
    step = min(most, FIRST_BACKOFF * 2.0 ** max(0, failures - 1))
    return float(step * (0.5 + draw() / 2))


def watcher_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid4().hex[:6]}"


def add_parser(commands: Commands) -> None:
    parser = commands.add_parser(
        "watch", help="IDLE on INBOX of the accounts this watcher holds; new mail starts a sync"
    )
    parser.set_defaults(run=lambda settings, args: run(settings))


def run(settings: Settings) -> int:
    """Watch until SIGTERM or SIGINT; a clean stop hands the accounts over at once."""
    stop = stop_on_signals()
    wiring = bootstrap(settings)
    mail = mail_wiring(settings, pool_size=4)
    leases = WatchLeases(mail.engine, watcher_id(), settings.watch_lease_seconds)
    log.info("watcher %s: lease %.1fs", leases.watcher_id, settings.watch_lease_seconds)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stopped: asyncio.Future[None] = loop.create_future()
        waiter = loop.run_in_executor(None, stop.wait)

        def on_stop(_: object) -> None:
            if not stopped.done():
                stopped.set_result(None)

        waiter.add_done_callback(on_stop)
        try:
            await Watcher(settings, wiring, mail, leases).run(stopped)
        finally:
            stop.set()
            await wiring.close_commands()

    asyncio.run(main())
    wiring.close()
    mail.close()
    return 0
