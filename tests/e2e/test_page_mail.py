"""The page shows the mail, live: connect a mailbox from it, then new mail appears without a
click (`syncctl watch` -> a new-mail sync -> the status stream -> the page reloads the list)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Request, expect
from sqlalchemy import create_engine

from consumers.mail.accounts import AccountStore, ImapAccount
from consumers.mail.oauth2_tokens import Tokens, mark_reauth_required
from consumers.mail.password_box import PasswordBox, new_key
from coordinator.dev.dovecot import Dovecot
from tests.e2e.page_driver import PHONE, WAIT_MS, new_page, sign_in
from tests.e2e.stack import Stack, running_stack
from tests.e2e.test_page_findings import sideways_overflow
from tests.e2e.test_sync_lifecycle import EVERYTHING
from tests.support.mailbox import append, new_login
from tests.support.random_refs import random_user

# Set to a path (docs/img/status-page-phone.png) to refresh the README's phone screenshot.
PHONE_SCREENSHOT = os.environ.get("SYNC_PAGE_PHONE_SCREENSHOT")
KEY = new_key()


@pytest.fixture(scope="module")
def mail_stack(server_url: str, kafka_bootstrap: str) -> Iterator[Stack]:
    """The whole system with the imap executor and a watcher (a 2 s lease, so an account
    registered now is watched within about a second)."""
    from tests.support import services

    with running_stack(
        services.create_database(server_url),
        kafka_bootstrap,
        components=(*EVERYTHING, "watch"),
        worker_executor="imap",
        mail_key=KEY,
        mail_allowed_hosts="127.0.0.1",  # the test Dovecot
        mail_report_every_seconds="0.2",
        watch_lease_seconds="2",
    ) as stack:
        yield stack


def messages(stack: Stack, user: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{stack.api.base_url}/mail/messages", headers=stack.api.headers(user))
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["messages"]
    return found


def connect_with_password(page: Page, login: ImapAccount) -> None:
    """The page's own form, as a person fills it in."""
    expect(page.locator("#account-state")).to_have_text(
        "No mailbox is connected yet: connect one below.", timeout=WAIT_MS
    )
    page.fill("#imap-host", login.host)
    page.fill("#imap-port", str(login.port))
    page.select_option("#imap-security", login.security)
    page.fill("#imap-username", login.username)
    page.fill("#imap-password", login.password)
    page.locator("#imap-form button[type=submit]").click()
    expect(page.locator("#account-state")).to_have_text(
        f"Connected: {login.username} at {login.host}.", timeout=WAIT_MS
    )


def test_a_connected_mailbox_shows_its_mail_and_new_mail_appears_without_a_click(
    mail_stack: Stack, page: Page, dovecot: Dovecot
) -> None:
    user, login = random_user("page"), new_login(dovecot)
    append(login, 3, tag="old")
    sign_in(page, mail_stack, user)
    connect_with_password(page, login)
    listed = page.locator("#messages li")
    expect(listed).to_have_count(3, timeout=WAIT_MS)  # the sync the connect started
    expect(page.locator("#folders button", has_text="INBOX (3)")).to_be_visible()
    expect(page.locator("#state")).to_have_text("incremental completed", timeout=WAIT_MS)
    clicks: list[Request] = []
    page.on("request", lambda r: clicks.append(r) if "/sync/smart" in r.url else None)

    appended = time.monotonic()
    append(login, 1, tag="fresh", start=7)
    newest = listed.first
    expect(newest.locator(".subject")).to_have_text("fresh message 7", timeout=WAIT_MS)
    shown = time.monotonic() - appended
    expect(newest).to_have_class("unread")
    expect(newest.locator(".meta")).to_contain_text("Sender 7 <sender7@example.org>")
    expect(listed).to_have_count(4)
    assert clicks == [], "the page sent a start itself"
    assert messages(mail_stack, user)[0]["subject"] == "fresh message 7"
    tasks = httpx.get(
        f"{mail_stack.api.base_url}/sync/tasks", headers=mail_stack.api.headers(user)
    ).json()["tasks"]
    assert tasks[0]["start_reason"] in ("new_mail", "queued_follow_up"), tasks
    print(f"new mail visible on the page {shown:.2f}s after the APPEND")


def test_at_phone_width_the_mail_fits_without_sideways_scrolling(
    mail_stack: Stack, browser: Browser, dovecot: Dovecot
) -> None:
    user, login = random_user("phone"), new_login(dovecot)
    append(login, 4, tag="A rather long subject line that a phone has to wrap somewhere")
    with new_page(browser, PHONE) as phone:
        sign_in(phone, mail_stack, user)
        connect_with_password(phone, login)
        expect(phone.locator("#messages li")).to_have_count(4, timeout=WAIT_MS)
        expect(phone.locator("#state")).to_have_text("incremental completed", timeout=WAIT_MS)
        assert sideways_overflow(phone) == (0, [])
        if PHONE_SCREENSHOT:
            phone.screenshot(path=PHONE_SCREENSHOT, full_page=True)


def test_an_expired_grant_says_so_and_offers_to_reconnect(mail_stack: Stack, page: Page) -> None:
    user = random_user("page")
    engine = create_engine(mail_stack.settings["database_url"])
    try:
        account = ImapAccount(
            "imap.example.org", 993, "tls", "ann@example.org", "", auth="oauth2", provider="google"
        )
        grant = Tokens(access_token="a", expires_in=3600, refresh_token="r")
        AccountStore(engine, PasswordBox(KEY)).connect_oauth2(user, account, grant)
        with engine.begin() as conn:
            mark_reauth_required(conn, user, "Google said invalid_grant")
    finally:
        engine.dispose()
    sign_in(page, mail_stack, user)
    expect(page.locator("#account-state")).to_have_text(
        "The connection to ann@example.org expired (Google said invalid_grant): reconnect it."
    )
    expect(page.locator("#reconnect")).to_be_visible()
    expect(page.locator("#reconnect")).to_be_enabled()
