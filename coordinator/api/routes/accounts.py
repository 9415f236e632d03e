"""The caller's IMAP account: register (optionally verified by a login), read, remove."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from consumers.mail.accounts import AccountView, ImapAccount
from consumers.mail.address_policy import HostRefused, resolve
from consumers.mail.imap_connection import MailProblem, verify
from consumers.mail.tls_policy import PlaintextRefused, refuse_plaintext
from coordinator.api.deps import UserId
from coordinator.api.mail_deps import AccountChecks, AccountsDep, ChecksDep
from coordinator.api.mail_schemas import AccountRequest, AccountResponse
from coordinator.api.problems.documents import problem
from coordinator.api.problems.openapi import AUTHENTICATED, problem_responses

router = APIRouter(prefix="/accounts", tags=["mail"])
VERIFY_TIMEOUT_SECONDS = 10.0  # the whole check: connect, greeting, TLS, login, folders


@router.put(
    "/imap",
    response_model=AccountResponse,
    responses=problem_responses(*AUTHENTICATED, 429),
)
async def put_account(
    body: AccountRequest,
    user_id: UserId,
    accounts: AccountsDep,
    checks: ChecksDep,
    request: Request,
    verify_login: Annotated[
        bool,
        Query(alias="verify", description="Log in first; 422 with the server's reason if it fails"),
    ] = False,
) -> AccountResponse | Response:
    """Register or replace the caller's account; a changed server or login drops synced mail."""
    account = ImapAccount(
        host=body.host,
        port=body.port,
        security=body.security,
        username=body.username,
        password=body.password,
        folders=tuple(body.folders) if body.folders is not None else None,
    )
    busy = _busy(checks, user_id)
    if busy:
        headers = {"Retry-After": str(int(VERIFY_TIMEOUT_SECONDS))}
        return problem(request.scope, 429, busy, kind="mail-check-busy", headers=headers)
    checks.running.add(user_id)
    try:
        await anyio.to_thread.run_sync(
            _check, account, checks, verify_login, limiter=checks.limiter
        )
    except HostRefused as error:
        return problem(request.scope, 422, str(error), kind="mail-host-not-allowed")
    except PlaintextRefused as error:
        return problem(request.scope, 422, str(error), kind="mail-plaintext-refused")
    except MailProblem as error:
        return problem(request.scope, 422, str(error), kind="mail-login-failed", reason="imap")
    finally:
        checks.running.discard(user_id)
    view = await run_in_threadpool(accounts.put, user_id, account)
    return _response(view)


def _busy(checks: AccountChecks, user_id: str) -> str | None:
    """Why no check can start now, or None."""
    if user_id in checks.running:
        return "a check of this user's account is already running; retry when it has answered"
    if checks.limiter.available_tokens < 1:
        return "too many account checks are running; retry in a few seconds"
    return None


def _check(account: ImapAccount, checks: AccountChecks, login: bool) -> None:
    """The host's address must be allowed; with `login`, the login and folders too (bounded)."""
    if login:
        verify(account, checks.allowed_hosts, VERIFY_TIMEOUT_SECONDS, checks.tls)
    else:
        resolve(account.host, account.port, checks.allowed_hosts)
        refuse_plaintext(account.host, account.port, account.security, checks.allowed_hosts)


@router.get(
    "/imap", response_model=AccountResponse, responses=problem_responses(*AUTHENTICATED, 404)
)
def get_account(user_id: UserId, accounts: AccountsDep) -> AccountResponse:
    """The caller's account, without the password."""
    view = accounts.describe(user_id)
    if view is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no IMAP account registered")
    return _response(view)


@router.delete("/imap", status_code=204, responses=problem_responses(*AUTHENTICATED, 404))
def delete_account(user_id: UserId, accounts: AccountsDep) -> Response:
    """Remove the caller's account and every message synced from it."""
    if not accounts.delete(user_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no IMAP account registered")
    return Response(status_code=204)


def _response(view: AccountView) -> AccountResponse:
    return AccountResponse(
        host=view.host,
        port=view.port,
        security=view.security,
        username=view.username,
        folders=list(view.folders) if view.folders is not None else None,
        updated_at=view.updated_at,
        auth=view.auth,
        provider=view.provider,
        state=view.state,
        state_reason=view.state_reason,
        reconnect=f"/accounts/oauth2/{view.provider}/start"
        if view.state == "reauth_required"
        else None,
    )
