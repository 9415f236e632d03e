"""Driving the status page in Debian's chromium (Playwright): the browser, a page, signing in.

The `browser` and `page` fixtures live in `conftest.py` and are built by the functions here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.e2e.stack import Stack

CHROMIUM = "/usr/bin/chromium"  # Playwright's own browser download cannot be reached here
WAIT_MS = 60_000  # the longest any page change may take on a loaded machine
DESKTOP = {"width": 900, "height": 720}
PHONE = {"width": 360, "height": 740}


@contextmanager
def chromium() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "no chromium: run scripts/install.sh as root"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


@contextmanager
def new_page(browser: Browser, viewport: dict[str, int] = DESKTOP) -> Iterator[Page]:
    """A page in a context of its own (its own sessionStorage, so its own sign-in)."""
    context = browser.new_context(
        viewport={"width": viewport["width"], "height": viewport["height"]}
    )
    try:
        yield context.new_page()
    finally:
        context.close()


def sign_in(page: Page, stack: Stack, user: str) -> None:
    """Open the page the way `syncctl dev`'s link does: the token in the URL fragment."""
    page.goto(f"{stack.api.base_url}/ui/#token={stack.api.token(user)}")
    expect(page.locator("#who")).to_have_text(f"Signed in as {user}")
    expect(page.locator("#live")).to_have_text("live updates: on", timeout=WAIT_MS)
    assert "token" not in page.url  # dropped from the address bar once kept
