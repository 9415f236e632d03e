"""OAuth2 mailboxes against a real OpenID Connect provider (npm oidc-provider) and a Dovecot that
checks the bearer tokens itself (oauth2 passdb, introspection): connect, sync, refresh, rotation,
a revoked grant, two workers refreshing at once."""

from __future__ import annotations

import multiprocessing
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, text

from consumers.executors import TaskFailed, TaskSpec
from consumers.mail.accounts import ImapAccount
from consumers.mail.imap_connection import close, connect
from consumers.mail.password_box import PasswordBox, new_key
from coordinator.dev.dovecot import Dovecot, OAuth2Passdb, start_dovecot
from coordinator.entrypoints.work import imap_executor
from core.settings import Settings
from tests.integration.app_harness import bearer, running_app, settings_for, user_token
from tests.support.mailbox import append
from tests.support.oauth2_flow import authorize
from tests.support.oauth2_workers import access_tokens, ask_together, keep_gate
from tests.support.oidc_server import OidcProvider, start_oidc_provider
from tests.support.random_refs import random_user

KEY = new_key()
NEW_KEY = new_key()  # the next SYNC_MAIL_KEY, after a rotation
LOOPBACK = "127.0.0.1"
TESTSERVER = "http://testserver"  # TestClient's base URL: the redirect URI's origin
START = "/accounts/oauth2/oidc/start"


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    server = start_oidc_provider([f"{TESTSERVER}/accounts/oauth2/oidc/callback"])
    yield server
    server.stop()


def passdb(provider: OidcProvider, mechanisms: str = "xoauth2 oauthbearer") -> OAuth2Passdb:
    return OAuth2Passdb(
        f"{provider.issuer}/token/introspection",
        provider.introspection_client_id,
        provider.introspection_secret,
        mechanisms,
    )


@pytest.fixture(scope="module")
def mailserver(provider: OidcProvider) -> Iterator[Dovecot]:
    root = Path(tempfile.mkdtemp(prefix="sync-test-dovecot-oauth2-"))
    server = start_dovecot(root, oauth2=passdb(provider))
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def settings(shared_database_url: str, provider: OidcProvider, mailserver: Dovecot) -> Settings:
    return settings_for(
        shared_database_url,
        mail_key=KEY,
        mail_allowed_hosts=LOOPBACK,
        mail_batch_size=5,
        mail_report_every_seconds=0.001,
        mail_timeout_seconds=10,
        oauth2_oidc_discovery_url=provider.discovery_url,
        oauth2_oidc_client_id=provider.client_id,
        oauth2_oidc_client_secret=provider.client_secret,
        oauth2_oidc_imap_host=LOOPBACK,
        oauth2_oidc_imap_port=mailserver.port,
        oauth2_oidc_imap_security="none",
    )


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with running_app(settings) as client:
        yield client


def as_user(user: str) -> dict[str, str]:
    return bearer(user_token(user))


def connect_mailbox(client: TestClient, user: str, login: str) -> Any:
    """The page's part (POST start), the user's (the provider's pages), the callback."""
    start = client.post(START, headers=as_user(user))
    assert start.status_code == 200, start.text
    back = authorize(start.json()["authorization_url"], login, TESTSERVER)
    return client.get(back.removeprefix(TESTSERVER), follow_redirects=False)


def new_mailbox(client: TestClient, mailserver: Dovecot, messages: int = 0) -> tuple[str, str]:
    """A user with a connected mailbox holding `messages` (seeded over a password login)."""
    user, login, password = random_user(), random_user("mail"), "seed-password"
    mailserver.add_user(login, password)
    if messages:
        append(ImapAccount(LOOPBACK, mailserver.port, "none", login, password), messages)
    connected = connect_mailbox(client, user, login)
    assert connected.status_code == 303, connected.text
    return user, login


def sync(settings: Settings, user: str, report: Any = None) -> dict[str, Any]:
    task = TaskSpec(user, random_user("task"), "incremental")
    stats: dict[str, Any] = imap_executor(settings).run(
        task, report or (lambda percent, stats: None), threading.Event()
    )
    return stats


def stored_count(engine: Engine, user: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM mail_messages WHERE user_id = :u"), {"u": user}
            ).scalar_one()
        )


def grant(engine: Engine, user: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = (
            conn.execute(
                text(
                    "SELECT refresh_token, state, refreshes, "
                    "extract(epoch FROM access_expires_at - clock_timestamp()) AS remaining "
                    "FROM mail_oauth2_tokens WHERE user_id = :u"
                ),
                {"u": user},
            )
            .mappings()
            .one()
        )
    box = PasswordBox(f"{NEW_KEY},{KEY}")
    return {**row, "refresh_token": box.open(bytes(row["refresh_token"]))}


def wait_until_due(engine: Engine, user: str) -> None:
    """Until the access token has under the worker's 60 s margin left (tokens here live 62 s)."""
    deadline = time.monotonic() + 30
    while grant(engine, user)["remaining"] >= 60:
        assert time.monotonic() < deadline, "the access token never came due"
        time.sleep(0.1)


def refreshes(provider: OidcProvider) -> int:
    return provider.counts().get("refresh_token", 0)


def login_methods(mailserver: Dovecot, login: str) -> list[str]:
    """The SASL mechanisms of the login's bearer logins, from Dovecot's log (seeding is PLAIN)."""
    log = (mailserver.root / "dovecot.log").read_text(errors="replace")
    return [
        line.split("method=")[1].split(",")[0]
        for line in log.splitlines()
        if f"user=<{login}>" in line and "Login:" in line and "method=PLAIN" not in line
    ]


def test_a_connected_mailbox_syncs_with_oauthbearer_and_its_tokens_stay_sealed(
    client: TestClient, settings: Settings, engine: Engine, mailserver: Dovecot
) -> None:
    user, login = new_mailbox(client, mailserver, messages=12)
    account = client.get("/accounts/imap", headers=as_user(user)).json()
    assert account["auth"] == "oauth2" and account["provider"] == "oidc"
    assert account["username"] == login and account["state"] == "connected"
    assert account["reconnect"] is None
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT password, auth FROM mail_accounts WHERE user_id = :u"), {"u": user}
        ).one()
        sealed = conn.execute(
            text("SELECT refresh_token, access_token FROM mail_oauth2_tokens WHERE user_id = :u"),
            {"u": user},
        ).one()
    assert row == (None, "oauth2")
    box = PasswordBox(KEY)
    for token in sealed:
        assert bytes(token).startswith(b"gAAAAA")  # a Fernet token, never the bearer itself
        assert box.open(bytes(token)).encode() not in bytes(token)
    stats = sync(settings, user)
    assert stats["fetched"] == 12 and stored_count(engine, user) == 12
    assert login_methods(mailserver, login) == ["OAUTHBEARER"]


def test_xoauth2_is_used_where_the_server_offers_only_that(
    client: TestClient, settings: Settings, engine: Engine, provider: OidcProvider
) -> None:
    root = Path(tempfile.mkdtemp(prefix="sync-test-dovecot-xoauth2-"))
    server = start_dovecot(root, oauth2=passdb(provider, mechanisms="xoauth2"))
    try:
        user, login = new_mailbox(client, server)
        tokens = access_tokens(settings)
        token = tokens.current(user)
        account = ImapAccount(LOOPBACK, server.port, "none", login, token, auth="oauth2")
        close(connect(account, allowed_hosts=frozenset({LOOPBACK})))
        assert login_methods(server, login) == ["XOAUTH2"]
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def started(client: TestClient, user: str) -> tuple[str, str]:
    """A connect begun by `user`: the provider URL and its state."""
    start = client.post(START, headers=as_user(user))
    assert start.status_code == 200, start.text
    url = start.json()["authorization_url"]
    state = url.split("state=")[1].split("&")[0]
    return url, state


def callback(client: TestClient, query: str) -> Any:
    return client.get(f"/accounts/oauth2/oidc/callback?{query}", follow_redirects=False)


def kind(answer: Any) -> str:
    assert answer.headers["content-type"].startswith("application/problem+json"), answer.text
    return str(answer.json()["type"]).rsplit(":", 1)[-1]


def test_a_callback_that_is_not_a_fresh_connect_of_this_provider_is_a_400_problem(
    client: TestClient, engine: Engine, mailserver: Dovecot
) -> None:
    user, login = random_user(), random_user("mail")
    assert kind(callback(client, "code=abc")) == "oauth2-state-invalid"
    assert kind(callback(client, "code=abc&state=never-issued")) == "oauth2-state-invalid"
    _, state = started(client, user)
    denied = callback(client, f"state={state}&error=access_denied&error_description=User+said+no")
    assert denied.status_code == 400 and kind(denied) == "oauth2-provider-error"
    assert denied.json()["reason"] == "access_denied" and "User said no" in denied.json()["detail"]
    assert kind(callback(client, f"state={state}&code=abc")) == "oauth2-state-invalid"  # used
    _, state = started(client, user)
    assert kind(callback(client, f"state={state}")) == "oauth2-code-missing"
    _, state = started(client, user)
    refused = callback(client, f"state={state}&code=made-up")
    assert refused.status_code == 400 and kind(refused) == "oauth2-code-refused"
    assert refused.json()["reason"] == "invalid_grant"
    url, state = started(client, user)
    with engine.begin() as conn:  # ten minutes pass
        conn.execute(text("UPDATE mail_oauth2_flows SET expires_at = clock_timestamp()"))
    back = authorize(url, login, TESTSERVER)
    assert kind(client.get(back.removeprefix(TESTSERVER), follow_redirects=False)) == (
        "oauth2-state-invalid"
    )
    url, state = started(client, user)  # ... and the link sent to someone else's browser
    back = authorize(url, login, TESTSERVER)
    client.cookies.clear()  # another browser: without this one's binding cookie
    elsewhere = client.get(back.removeprefix(TESTSERVER), follow_redirects=False)
    assert elsewhere.status_code == 400 and kind(elsewhere) == "oauth2-state-invalid"
    assert "another browser" in elsewhere.json()["detail"]
    _, state = started(client, user)
    mixed_up = callback(client, f"state={state}&code=abc&iss=https%3A%2F%2Fevil.example")
    assert kind(mixed_up) == "oauth2-issuer-mismatch"
    for _ in range(7):
        started(client, user)
    with engine.connect() as conn:
        open_flows = conn.execute(
            text("SELECT count(*) FROM mail_oauth2_flows WHERE user_id = :u"), {"u": user}
        ).scalar_one()
    assert open_flows == 5
    unknown = client.post("/accounts/oauth2/nowhere/start", headers=as_user(user))
    assert unknown.status_code == 404 and kind(unknown) == "oauth2-provider-unknown"
    assert client.post(START).status_code == 401
    assert client.get("/accounts/imap", headers=as_user(user)).status_code == 404  # nothing kept


def test_the_get_route_redirects_to_the_provider_and_providers_are_listed(
    client: TestClient, provider: OidcProvider
) -> None:
    user = random_user()
    answer = client.get(START, headers=as_user(user), follow_redirects=False)
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith(f"{provider.issuer}/auth?")
    assert "code_challenge_method=S256" in location and "prompt=consent" in location
    listed = client.get("/accounts/oauth2/providers", headers=as_user(user)).json()
    assert [p["provider"] for p in listed["providers"]] == ["oidc"]


def test_a_due_token_is_refreshed_and_the_rotated_refresh_token_is_the_one_kept(
    client: TestClient,
    settings: Settings,
    engine: Engine,
    mailserver: Dovecot,
    provider: OidcProvider,
) -> None:
    user, _ = new_mailbox(client, mailserver, messages=3)
    first = grant(engine, user)["refresh_token"]
    before = refreshes(provider)
    assert sync(settings, user)["fetched"] == 3
    assert refreshes(provider) == before  # a fresh token is used as it is
    wait_until_due(engine, user)
    sync(settings, user)
    second = grant(engine, user)
    assert refreshes(provider) == before + 1 and second["refreshes"] == 1
    assert second["refresh_token"] != first  # rotated, and kept
    wait_until_due(engine, user)
    # The operator rotates SYNC_MAIL_KEY; a worker with the new key first spends the rotated
    # refresh token (the first one would revoke the grant) and seals the new ones under it.
    rotated_keys = settings.model_copy(update={"mail_key": SecretStr(f"{NEW_KEY},{KEY}")})
    assert sync(rotated_keys, user)["fetched"] == 0
    assert refreshes(provider) == before + 2
    assert grant(engine, user)["state"] == "connected"
    assert "refresh_token:invalid_grant" not in provider.counts()
    with engine.connect() as conn:
        sealed = conn.execute(
            text("SELECT refresh_token, access_token FROM mail_oauth2_tokens WHERE user_id = :u"),
            {"u": user},
        ).one()
    for token in sealed:
        PasswordBox(NEW_KEY).open(bytes(token))  # the old key is no longer needed


def test_a_session_ended_mid_sync_when_its_token_expired_logs_in_again_and_finishes(
    client: TestClient,
    settings: Settings,
    engine: Engine,
    mailserver: Dovecot,
    provider: OidcProvider,
) -> None:
    user, login = new_mailbox(client, mailserver, messages=30)
    before = refreshes(provider)
    kicked: list[float] = []

    def report(percent: float, stats: dict[str, Any]) -> None:
        if stats["fetched"] >= 10 and not kicked:
            wait_until_due(engine, user)  # the token expires (by the worker's margin) ...
            mailserver.kick(login)  # ... and the server ends the session, as Exchange does
            kicked.append(percent)

    stats = sync(settings, user, report)
    assert kicked and stored_count(engine, user) == 30
    assert 0 < stats["fetched"] < 30  # resumed from the last committed batch, not redone
    assert refreshes(provider) == before + 1
    assert login_methods(mailserver, login) == ["OAUTHBEARER", "OAUTHBEARER"]


def test_a_revoked_grant_fails_the_sync_with_reconnect_and_stops_asking_the_provider(
    client: TestClient,
    settings: Settings,
    engine: Engine,
    mailserver: Dovecot,
    provider: OidcProvider,
) -> None:
    user, login = new_mailbox(client, mailserver, messages=2)
    provider.revoke(grant(engine, user)["refresh_token"])  # the user removed the app's access
    refused_before = provider.counts().get("refresh_token:invalid_grant", 0)
    with pytest.raises(TaskFailed) as failed:
        sync(settings, user)
    assert str(failed.value).startswith(
        f"the mailbox connection expired: reconnect it at {START}"
    ), failed.value
    account = client.get("/accounts/imap", headers=as_user(user)).json()
    assert account["state"] == "reauth_required" and account["reconnect"] == START
    assert "invalid_grant" in account["state_reason"]
    calls = provider.counts()
    assert calls.get("refresh_token:invalid_grant", 0) == refused_before + 1
    for _ in range(3):  # more clicks: each fails at once, the provider is not asked again
        with pytest.raises(TaskFailed, match="the mailbox connection expired"):
            sync(settings, user)
    assert provider.counts() == calls
    assert connect_mailbox(client, user, login).status_code == 303  # the user reconnects
    assert client.get("/accounts/imap", headers=as_user(user)).json()["state"] == "connected"
    assert sync(settings, user)["fetched"] == 2


def test_two_workers_asking_at_once_make_one_refresh_at_the_provider(
    client: TestClient,
    settings: Settings,
    engine: Engine,
    mailserver: Dovecot,
    provider: OidcProvider,
) -> None:
    user, _ = new_mailbox(client, mailserver)
    spawn = multiprocessing.get_context("spawn")  # two processes, as two workers are
    gate = spawn.Barrier(3)  # theirs, and this test's once the token is due
    with ProcessPoolExecutor(2, mp_context=spawn, initializer=keep_gate, initargs=(gate,)) as pool:
        asked = [pool.submit(ask_together, settings, user) for _ in range(2)]
        wait_until_due(engine, user)
        before = refreshes(provider)
        refused = provider.counts().get("refresh_token:invalid_grant")
        gate.wait(60)
        got = [future.result(60) for future in asked]
    assert got[0] == got[1]
    assert refreshes(provider) == before + 1
    assert provider.counts().get("refresh_token:invalid_grant") == refused
    assert grant(engine, user)["refreshes"] == 1


def test_an_id_token_signed_with_keys_published_since_start_is_accepted(
    shared_database_url: str,
) -> None:
    redirect = f"{TESTSERVER}/accounts/oauth2/oidc/callback"
    first = start_oidc_provider([redirect])
    settings = settings_for(
        shared_database_url,
        mail_key=KEY,
        oauth2_oidc_discovery_url=first.discovery_url,
        oauth2_oidc_client_id=first.client_id,
        oauth2_oidc_client_secret=first.client_secret,
        oauth2_oidc_imap_host=LOOPBACK,
        oauth2_oidc_imap_security="none",
    )
    again = None
    try:
        with running_app(settings) as client:
            assert connect_mailbox(client, random_user(), "ann").status_code == 303  # keys kept
            first.stop()
            again = start_oidc_provider([redirect], same_as=first)  # new signing keys
            user = random_user()
            assert connect_mailbox(client, user, "bob").status_code == 303
            assert client.get("/accounts/imap", headers=as_user(user)).json()["username"] == "bob"
    finally:
        first.stop()
        if again is not None:
            again.stop()
