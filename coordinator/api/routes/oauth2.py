"""Connecting a mailbox with OAuth2: the authorization code flow with PKCE and `state`.

The page POSTs .../start (with its bearer header) and navigates to the URL it is handed; a
client that sends the header on a navigation can GET .../start for a 302. The provider sends
the browser back to .../callback, which the `state` and the starting browser's cookie tie to
the user (one use, 10 minutes). Contract: docs/mail.md#oauth2-accounts.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from typing import Annotated

import anyio
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse

from consumers.mail.accounts import ImapAccount
from consumers.mail.oauth2_client import (
    IdTokenInvalid,
    IssuerMismatch,
    OAuth2Client,
    ProviderRefused,
    ProviderUnreachable,
)
from consumers.mail.oauth2_flows import FLOW_SECONDS
from coordinator.api.deps import UserId
from coordinator.api.mail_deps import AccountsDep
from coordinator.api.mail_schemas import (
    OAuth2ProviderResponse,
    OAuth2ProvidersResponse,
    OAuth2StartResponse,
)
from coordinator.api.oauth2_deps import OAuth2Dep, OAuth2Setup
from coordinator.api.problems.documents import problem
from coordinator.api.problems.openapi import AUTHENTICATED, problem_responses

router = APIRouter(prefix="/accounts/oauth2", tags=["mail"])
BROWSER_COOKIE = "sync_oauth2_browser"  # binds a connect to the browser that started it
BINDING = re.compile(r"[A-Za-z0-9_-]{43}")  # what token_urlsafe(32) makes
ProviderName = Annotated[str, Path(pattern=r"^[a-z0-9-]{1,30}$")]
OAuthParam = Annotated[str | None, Query(max_length=2048, pattern=r"^[\x20-\x7e]*$")]


@router.get(
    "/providers",
    response_model=OAuth2ProvidersResponse,
    responses=problem_responses(*AUTHENTICATED),
)
async def list_providers(_: UserId, request: Request) -> OAuth2ProvidersResponse:
    """The providers a mailbox can be connected with here."""
    setup: OAuth2Setup = request.app.state.oauth2
    return OAuth2ProvidersResponse(
        providers=[
            OAuth2ProviderResponse(
                provider=name,
                title=c.provider.title,
                imap_host=c.provider.imap_host,
                imap_port=c.provider.imap_port,
            )
            for name, c in setup.clients.items()
        ]
    )


@router.post(
    "/{provider}/start",
    response_model=OAuth2StartResponse,
    responses=problem_responses(*AUTHENTICATED, 404, 502),
)
async def start_for_page(
    provider: ProviderName,
    user_id: UserId,
    setup: OAuth2Dep,
    request: Request,
    response: Response,
) -> OAuth2StartResponse | Response:
    """Begin a connect: the provider's authorization URL for the page to navigate to, and the
    cookie that lets only this browser finish it."""
    started = await _start(provider, user_id, setup, request)
    if isinstance(started, Response):
        return started
    url, expires_at, browser = started
    _bind(response, request, browser)
    return OAuth2StartResponse(authorization_url=url, expires_at=expires_at)


@router.get(
    "/{provider}/start",
    status_code=302,
    response_class=RedirectResponse,
    responses=problem_responses(*AUTHENTICATED, 404, 502),
)
async def start_redirect(
    provider: ProviderName, user_id: UserId, setup: OAuth2Dep, request: Request
) -> Response:
    """Begin a connect: 302 to the provider's authorization page (and the binding cookie)."""
    started = await _start(provider, user_id, setup, request)
    if isinstance(started, Response):
        return started
    redirect = RedirectResponse(started[0], status_code=302)
    _bind(redirect, request, started[2])
    return redirect


@router.get(
    "/{provider}/callback",
    status_code=303,
    response_class=RedirectResponse,
    responses=problem_responses(400, 404, 422, 500, 502, 503),
)
async def callback(
    provider: ProviderName,
    setup: OAuth2Dep,
    accounts: AccountsDep,
    request: Request,
    state: OAuthParam = None,
    code: OAuthParam = None,
    error: OAuthParam = None,
    error_description: OAuthParam = None,
    iss: OAuthParam = None,
) -> Response:
    """Where the provider sends the browser back: store the account, go to the page."""
    scope = request.scope
    client = setup.clients.get(provider)
    if client is None:
        return _unknown(request, provider)
    assert setup.flows is not None
    browser = request.cookies.get(BROWSER_COOKIE, "")
    flow = await run_in_threadpool(setup.flows.take, state, browser) if state else None
    if flow is None or flow.provider != provider:
        return problem(
            scope,
            400,
            "this connect is unknown, was already completed, expired (10 minutes) or was "
            "started in another browser: start it again here",
            kind="oauth2-state-invalid",
        )
    title = client.provider.title
    if error:
        said = f": {error_description}" if error_description else ""
        return problem(
            scope,
            400,
            f"{title} answered {error}{said}",
            kind="oauth2-provider-error",
            reason=error,
        )
    if not code:
        return problem(scope, 400, f"{title} sent no code", kind="oauth2-code-missing")
    redirect_uri = _redirect_uri(setup, request, provider)
    try:
        connected = await anyio.to_thread.run_sync(
            client.exchange, code, flow.code_verifier, redirect_uri, flow.nonce, iss
        )
    except IssuerMismatch as mismatch:
        return problem(scope, 400, str(mismatch), kind="oauth2-issuer-mismatch")
    except ProviderRefused as refused:
        return problem(
            scope,
            400,
            f"{title} refused the code: {refused}",
            kind="oauth2-code-refused",
            reason=refused.error,
        )
    except ProviderUnreachable as unreachable:
        return problem(scope, 502, str(unreachable), kind="oauth2-provider-unreachable")
    except IdTokenInvalid as invalid:
        return problem(scope, 400, str(invalid), kind="oauth2-id-token-invalid")
    if connected.tokens.refresh_token is None:
        return problem(
            scope,
            400,
            f"{title} granted no refresh token (offline access), so the service could not "
            "sync later: remove the app's access at the provider and connect again",
            kind="oauth2-no-refresh-token",
        )
    p = client.provider
    account = ImapAccount(
        host=p.imap_host,
        port=p.imap_port,
        security=p.imap_security,
        username=connected.login,
        password="",
        auth="oauth2",
        provider=provider,
    )
    await run_in_threadpool(accounts.connect_oauth2, flow.user_id, account, connected.tokens)
    return RedirectResponse(
        f"{setup.return_url}#oauth2=connected&provider={provider}", status_code=303
    )


async def _start(
    provider: str, user_id: str, setup: OAuth2Setup, request: Request
) -> tuple[str, datetime, str] | Response:
    client = setup.clients.get(provider)
    if client is None:
        return _unknown(request, provider)
    assert setup.flows is not None
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(16)
    verifier = secrets.token_urlsafe(64)  # RFC 7636: 43-128 characters of this alphabet
    try:
        url = await anyio.to_thread.run_sync(
            _authorization_url,
            client,
            _redirect_uri(setup, request, provider),
            state,
            verifier,
            nonce,
        )
    except ProviderUnreachable as unreachable:
        return problem(request.scope, 502, str(unreachable), kind="oauth2-provider-unreachable")
    # One binding per browser, kept while its connects are open, so several can run at once.
    browser = request.cookies.get(BROWSER_COOKIE, "")
    if not BINDING.fullmatch(browser):
        browser = secrets.token_urlsafe(32)
    expires_at = await run_in_threadpool(
        setup.flows.begin, state, browser, user_id, provider, verifier, nonce
    )
    return url, expires_at, browser


def _bind(response: Response, request: Request, browser: str) -> None:
    # Lax: sent on the provider's top-level redirect back; never readable by scripts.
    response.set_cookie(
        BROWSER_COOKIE,
        browser,
        max_age=FLOW_SECONDS,
        path="/accounts/oauth2/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def _authorization_url(
    client: OAuth2Client, redirect_uri: str, state: str, verifier: str, nonce: str
) -> str:
    return client.authorization_url(redirect_uri, state, verifier, nonce)


def _redirect_uri(setup: OAuth2Setup, request: Request, provider: str) -> str:
    base = setup.public_url or str(request.base_url).rstrip("/")
    return f"{base}/accounts/oauth2/{provider}/callback"


def _unknown(request: Request, provider: str) -> Response:
    return problem(
        request.scope,
        404,
        f"no OAuth2 provider {provider!r} is configured here",
        kind="oauth2-provider-unknown",
    )
