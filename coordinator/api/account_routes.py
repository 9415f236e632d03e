"""The caller's IMAP account: register (optionally verified by a login), read, remove."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from coordinator.api.deps import SettingsDep, UserId
from coordinator.api.mail_deps import AccountsDep
from coordinator.api.mail_schemas import AccountRequest, AccountResponse
from coordinator.api.openapi import AUTHENTICATED, problem_responses
from coordinator.api.problems import problem
from mail.accounts import AccountView, ImapAccount
from mail.imap_connection import MailProblem, verify

router = APIRouter(prefix="/accounts", tags=["mail"])
VERIFY_TIMEOUT_SECONDS = 10.0


@router.put(
    "/imap",
    response_model=AccountResponse,
    responses=problem_responses(*AUTHENTICATED),
)
async def put_account(
    body: AccountRequest,
    user_id: UserId,
    accounts: AccountsDep,
    settings: SettingsDep,
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
    if not settings.mail_host_allowed(body.host):
        detail = f"host {body.host!r} is not one this service may connect to"
        return problem(request.scope, 422, detail, kind="mail-host-not-allowed")
    if verify_login:
        try:
            await run_in_threadpool(verify, account, VERIFY_TIMEOUT_SECONDS)
        except MailProblem as error:
            return problem(request.scope, 422, str(error), kind="mail-login-failed", reason="imap")
    view = await run_in_threadpool(accounts.put, user_id, account)
    return _response(view)


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
    )
