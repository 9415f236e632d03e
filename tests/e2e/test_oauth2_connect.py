"""Connecting an OAuth2 mailbox in a real browser (Debian's chromium, Playwright): the page asks
the API for the provider's URL, the user signs in and consents on the provider's own pages
(npm oidc-provider), comes back to the page, and a Sync click syncs the mailbox with a bearer
token that Dovecot checks at the provider."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from consumers.mail.accounts import ImapAccount
from consumers.mail.password_box import new_key
from coordinator.dev.dovecot import Dovecot, OAuth2Passdb, start_dovecot
from coordinator.dev.embedded import free_port
from tests.e2e.page_driver import WAIT_MS, sign_in
from tests.e2e.stack import Stack, running_stack
from tests.support.mailbox import append
from tests.support.oidc_server import OidcProvider, start_oidc_provider
from tests.support.random_refs import random_user

LOOPBACK = "127.0.0.1"


@pytest.fixture
def parts(database_url: str, kafka_bootstrap: str) -> Iterator[tuple[Stack, OidcProvider, Dovecot]]:
    port = free_port()
    provider = start_oidc_provider([f"http://{LOOPBACK}:{port}/accounts/oauth2/oidc/callback"])
    root = Path(tempfile.mkdtemp(prefix="sync-test-dovecot-oauth2-"))
    introspection = f"{provider.issuer}/token/introspection"
    passdb = OAuth2Passdb(
        introspection, provider.introspection_client_id, provider.introspection_secret
    )
    server = start_dovecot(root, oauth2=passdb)
    try:
        with running_stack(
            database_url,
            kafka_bootstrap,
            components=("relay", "project", "work"),
            api_port=str(port),
            worker_executor="imap",
            mail_key=new_key(),
            mail_allowed_hosts=LOOPBACK,
            oauth2_oidc_discovery_url=provider.discovery_url,
            oauth2_oidc_client_id=provider.client_id,
            oauth2_oidc_client_secret=provider.client_secret,
            oauth2_oidc_title="Test provider",
            oauth2_oidc_imap_host=LOOPBACK,
            oauth2_oidc_imap_port=str(server.port),
            oauth2_oidc_imap_security="none",
        ) as stack:
            yield stack, provider, server
    finally:
        server.stop()
        provider.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_a_mailbox_connected_in_chromium_syncs_with_its_bearer_token(
    parts: tuple[Stack, OidcProvider, Dovecot], page: Page
) -> None:
    stack, provider, server = parts
    user, login = random_user("page"), random_user("mail")
    server.add_user(login, "seed-password")
    append(ImapAccount(LOOPBACK, server.port, "none", login, "seed-password"), 5)
    sign_in(page, stack, user)

    # The page's own button (it POSTs the start route with its token, then follows the URL).
    connect = page.locator("#connect-oidc")
    expect(connect).to_have_text("Connect Test provider", timeout=WAIT_MS)
    connect.click()
    page.wait_for_url(f"{provider.issuer}/interaction/**")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any")
    page.click("button[type=submit]")
    expect(page.locator("body")).to_contain_text("Authorize", timeout=WAIT_MS)  # consent
    page.click("button[type=submit]")
    page.wait_for_url(f"{stack.api.base_url}/ui/#oauth2=connected&provider=oidc")

    account = httpx.get(f"{stack.api.base_url}/accounts/imap", headers=stack.api.headers(user))
    assert account.json()["auth"] == "oauth2" and account.json()["username"] == login
    expect(page.locator("#who")).to_have_text(f"Signed in as {user}")  # still signed in
    page.locator("#sync").click()
    expect(page.locator("#state")).to_have_text("incremental completed", timeout=WAIT_MS)
    messages = httpx.get(
        f"{stack.api.base_url}/mail/messages", headers=stack.api.headers(user)
    ).json()["messages"]
    assert sorted(m["subject"] for m in messages) == [f"m message {n}" for n in range(5)]
    log = (server.root / "dovecot.log").read_text()
    assert f"user=<{login}>, method=OAUTHBEARER" in log
