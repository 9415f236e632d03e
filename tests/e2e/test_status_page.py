"""The status page in a real browser (Debian's chromium, driven by Playwright) on the real stack."""

from __future__ import annotations

import os
import re
import time
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.page_driver import WAIT_MS, sign_in
from tests.e2e.stack import Stack
from tests.support.random_refs import random_user

# Set to a path (docs/img/status-page.png) to refresh the README's screenshot.
SCREENSHOT = os.environ.get("SYNC_PAGE_SCREENSHOT")


def tasks_of(stack: Stack, user: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{stack.api.base_url}/sync/tasks", headers=stack.api.headers(user))
    assert answer.status_code == 200, answer.text
    tasks: list[dict[str, Any]] = answer.json()["tasks"]
    return tasks


def test_twenty_fast_clicks_make_one_task_and_the_bar_reaches_100(
    live_stack: Stack, page: Page
) -> None:
    user = random_user("page")
    sign_in(page, live_stack, user)
    answers: list[int] = []
    page.on(
        "response",
        lambda r: answers.append(r.status) if "/sync/smart" in r.url else None,
    )
    sync = page.locator("#sync")
    for _ in range(20):
        sync.click()
    expect(page.locator("#outcome")).to_contain_text(
        "Clicks so far: 1 started, 19 joined.", timeout=WAIT_MS
    )
    expect(page.locator("#bar")).to_have_attribute("aria-valuenow", "100", timeout=WAIT_MS)
    expect(page.locator("#state")).to_have_text("incremental completed")
    expect(page.locator("#counts")).to_have_text("100 of 100 messages")
    expect(page.locator("#stop")).to_be_disabled()
    expect(page.locator("#tasks tbody tr")).to_have_count(1)
    assert answers == [202] * 20
    tasks = tasks_of(live_stack, user)
    assert [(t["status"], t["reuse_count"]) for t in tasks] == [("completed", 19)], tasks


def test_stop_cancels_the_running_sync_and_the_next_click_starts_anew(
    live_stack: Stack, page: Page
) -> None:
    user = random_user("page")
    sign_in(page, live_stack, user)
    page.locator("#sync").click()
    expect(page.locator("#state")).to_have_text("incremental running", timeout=WAIT_MS)
    stop = page.locator("#stop")
    expect(stop).to_be_enabled()
    stop.click()
    expect(page.locator("#state")).to_have_text("incremental cancelled", timeout=WAIT_MS)
    expect(stop).to_be_disabled()
    cancelled = tasks_of(live_stack, user)
    assert [t["status"] for t in cancelled] == ["cancelled"]
    assert cancelled[0]["progress_percentage"] < 100
    page.locator("#sync").click()
    expect(page.locator("#outcome")).to_contain_text("Started an incremental sync")
    expect(page.locator("#tasks tbody tr")).to_have_count(2, timeout=WAIT_MS)
    first_task = cancelled[0]["task_id"]
    assert [t["task_id"] == first_task for t in tasks_of(live_stack, user)] == [False, True]


def test_a_full_sync_clicked_during_an_incremental_starts_after_it(
    live_stack: Stack, page: Page
) -> None:
    user = random_user("page")
    sign_in(page, live_stack, user)
    page.locator("#sync").click()
    expect(page.locator("#state")).to_have_text("incremental running", timeout=WAIT_MS)
    page.locator("#full").check()
    page.locator("#sync").click()
    expect(page.locator("#outcome")).to_contain_text("A full sync is queued")
    expect(page.locator("#queued")).to_be_visible(timeout=WAIT_MS)
    if SCREENSHOT:  # halfway through the incremental one, the full one queued behind it
        halfway = re.compile(r"^([4-9][0-9]|100)$")
        expect(page.locator("#bar")).to_have_attribute("aria-valuenow", halfway)
        page.locator("main").screenshot(path=SCREENSHOT)
    expect(page.locator("#state")).to_have_text("full running", timeout=WAIT_MS)
    expect(page.locator("#queued")).to_be_hidden()
    expect(page.locator("#tasks tbody tr")).to_have_count(2, timeout=WAIT_MS)
    tasks = tasks_of(live_stack, user)
    assert [(t["sync_type"], t["status"]) for t in tasks][1] == ("incremental", "completed")
    assert (tasks[0]["sync_type"], tasks[0]["start_reason"]) == ("full", "queued_full_sync")
    page.locator("#stop").click()  # no need to wait 8 s for the full sync
    expect(page.locator("#state")).to_have_text("full cancelled", timeout=WAIT_MS)


def test_errors_are_shown_in_words(live_stack: Stack, page: Page) -> None:
    page.goto(f"{live_stack.api.base_url}/ui/#token=not-a-token")
    expect(page.locator("#error")).to_have_text(
        "Your token was refused or has expired: sign in again.", timeout=WAIT_MS
    )
    expect(page.locator("#signin")).to_be_visible()
    expect(page.locator("#sync")).to_be_disabled()
    user, ttl = random_user("page"), 5
    expires = time.time() + ttl
    page.locator("#token-input").fill(live_stack.api.token(user, ttl=ttl))
    page.locator("#signin button").click()
    expect(page.locator("#live")).to_have_text("live updates: on", timeout=WAIT_MS)
    # The token runs out while the page is open: the status stream ends with it, and the
    # page's reconnect is refused, so it asks to sign in again without waiting for a click.
    expect(page.locator("#live")).not_to_have_text("live updates: on", timeout=WAIT_MS)
    assert time.time() >= expires - 1, "the stream ended before the token expired"
    expect(page.locator("#error")).to_have_text(
        "Your token was refused or has expired: sign in again.", timeout=WAIT_MS
    )
    expect(page.locator("#signin")).to_be_visible()
