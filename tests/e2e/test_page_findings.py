"""The four findings of a new user's first try of the status page (issue 19), each held."""

from __future__ import annotations

import subprocess
import time

import httpx
from playwright.sync_api import Browser, Page, Request, expect

from coordinator.api.auth.tokens import issue_token
from coordinator.dev.embedded import free_port
from coordinator.dev.processes import wait_ready
from tests.e2e.page_driver import PHONE, WAIT_MS, new_page, sign_in
from tests.e2e.processes import SECRET, spawn, stop
from tests.e2e.stack import Stack
from tests.support.random_refs import random_user

SIGN_IN_AGAIN = "Your token was refused or has expired: sign in again."


def sideways_overflow(page: Page) -> tuple[int, list[str]]:
    """Pixels the page is wider than the window (0: no sideways scrolling), and the elements
    that reach past its right edge."""
    over: int = page.evaluate(
        "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
        " - window.innerWidth"
    )
    wide: list[str] = page.evaluate(
        "[...document.querySelectorAll('body *')].filter((e) =>"
        " e.getBoundingClientRect().right > window.innerWidth + 0.5)"
        ".map((e) => `${e.tagName}#${e.id}.${e.className}`)"
    )
    return over, wide


def test_at_phone_width_the_page_with_its_task_table_does_not_scroll_sideways(
    live_stack: Stack, browser: Browser
) -> None:
    with new_page(browser, PHONE) as phone:
        user = random_user("phone")
        sign_in(phone, live_stack, user)
        phone.locator("#sync").click()
        expect(phone.locator("#state")).to_have_text("incremental completed", timeout=WAIT_MS)
        expect(phone.locator("#tasks tbody tr")).to_have_count(1)
        assert phone.locator("#tasks td.task").is_visible()  # nothing hidden to make it fit
        assert sideways_overflow(phone) == (0, [])
        box = phone.locator("#tasks").bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]


def test_an_expired_token_disables_every_action_and_keeps_sign_in_again(
    live_stack: Stack, page: Page
) -> None:
    sent: list[Request] = []
    page.on("request", lambda r: sent.append(r) if "/sync/" in r.url else None)
    user, ttl = random_user("page"), 4
    expires = time.time() + ttl
    page.goto(f"{live_stack.api.base_url}/ui/#token={live_stack.api.token(user, ttl=ttl)}")
    expect(page.locator("#live")).to_have_text("live updates: on", timeout=WAIT_MS)
    expect(page.locator("#sync")).to_be_enabled()
    expect(page.locator("#sync")).to_be_disabled(timeout=WAIT_MS)
    assert time.time() >= expires - 1, "disabled before the token expired"
    expect(page.locator("#full")).to_be_disabled()
    expect(page.locator("#stop")).to_be_disabled()
    expect(page.locator("#error")).to_have_text(SIGN_IN_AGAIN)
    page.locator("#sync").click(force=True)  # a click on the disabled button does nothing
    page.wait_for_timeout(500)
    expect(page.locator("#error")).to_have_text(SIGN_IN_AGAIN)
    bearers = {r.headers.get("authorization") for r in sent}
    assert "Bearer null" not in bearers and None not in bearers, bearers
    assert not [r for r in sent if "/sync/smart" in r.url]


def test_cannot_reach_the_server_goes_away_once_the_stream_is_back(
    shared_database_url: str, page: Page
) -> None:
    """The API restarts: while it is down a click cannot reach it; once the page's status
    stream has reconnected, that message is gone."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    def start_api() -> subprocess.Popen[bytes]:
        return spawn("api", database_url=shared_database_url, jwt_secret=SECRET, api_port=str(port))

    api = start_api()
    try:
        wait_ready(f"{base}/healthz", api, 30)
        page.goto(f"{base}/ui/#token={issue_token(random_user('page'), SECRET, 600)}")
        expect(page.locator("#live")).to_have_text("live updates: on", timeout=WAIT_MS)
        stop(api)
        expect(page.locator("#live")).to_contain_text("unreachable", timeout=WAIT_MS)
        page.locator("#sync").click()
        expect(page.locator("#error")).to_have_text("Sync: cannot reach the server")
        api = start_api()
        wait_ready(f"{base}/healthz", api, 30)
        expect(page.locator("#live")).to_have_text("live updates: on", timeout=WAIT_MS)
        expect(page.locator("#error")).to_be_hidden()
    finally:
        stop(api)


def test_the_page_icon_is_served_and_none_of_the_page_s_files_fails(
    live_stack: Stack, page: Page
) -> None:
    """Headless Chromium fetches no icon on its own (and Playwright would not report the
    browser's own favicon request), so the icon the page names is fetched as the browser would:
    both it and the conventional /favicon.ico answer an image, not a 404 in the console. (API
    answers such as 404 for "no mailbox yet" are the page's to read, and it does.)"""
    base = live_stack.api.base_url

    def own_file(url: str) -> bool:
        return url.startswith(f"{base}/ui/") or url == f"{base}/favicon.ico"

    failed: list[str] = []
    page.on(
        "response",
        lambda r: (
            failed.append(f"{r.status} {r.url}") if r.status >= 400 and own_file(r.url) else None
        ),
    )
    page.on(
        "console",
        lambda m: (
            failed.append(m.text)
            if m.type == "error" and (own_file(m.location.get("url", "")) or "favicon" in m.text)
            else None
        ),
    )
    sign_in(page, live_stack, random_user("page"))
    icon = page.evaluate(
        "async () => { const link = document.querySelector('link[rel=icon]');"
        " const answer = await fetch(link.href);"
        " return [link.href, answer.status, answer.headers.get('content-type')]; }"
    )
    assert icon == [f"{base}/favicon.ico", 200, "image/svg+xml"]
    answer = httpx.get(f"{base}/favicon.ico")
    assert answer.status_code == 200 and answer.text.startswith("<svg")
    expect(page.locator("#account-state")).to_have_text(
        "No mailbox is connected yet: connect one below."
    )
    assert failed == []
