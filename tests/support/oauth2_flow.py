"""A user going through the provider's real login and consent pages, over HTTP with cookies
kept and redirects not followed (the browser's part; the Chromium test does it in a browser)."""

from __future__ import annotations

import re

import httpx

FORM_ACTION = re.compile(r'<form[^>]*action="([^"]+)"')
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


def authorize(authorization_url: str, login: str, redirect_prefix: str) -> str:
    """Sign in as `login` and consent; the URL the provider sends the browser back to."""
    with httpx.Client(follow_redirects=False, timeout=10) as browser:
        answer = browser.get(authorization_url)
        for _ in range(10):
            if answer.status_code in (302, 303):
                location = str(answer.url.join(answer.headers["location"]))
                if location.startswith(redirect_prefix):
                    return location
                answer = browser.get(location)
                continue
            assert answer.status_code == 200, answer.text
            page = answer.text
            fields = dict(HIDDEN.findall(page))
            if 'name="login"' in page:
                fields.update(login=login, password="any")  # the dev login takes any password
            action = FORM_ACTION.search(page)
            assert action is not None, page
            answer = browser.post(str(answer.url.join(action.group(1))), data=fields)
    raise AssertionError("the provider never sent the browser back")
