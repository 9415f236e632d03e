"""The OpenAPI page in a real browser: Swagger UI from the API's own files, under its CSP."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.page_driver import WAIT_MS
from tests.e2e.processes import Api


def test_the_docs_page_renders_every_operation_from_this_origin_alone(api: Api, page: Page) -> None:
    requested: list[str] = []
    complaints: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("console", lambda m: complaints.append(m.text) if m.type == "error" else None)
    document = httpx.get(f"{api.base_url}/openapi.json").json()
    operations = sum(len(methods) for methods in document["paths"].values())
    answer = page.goto(f"{api.base_url}/docs")
    assert answer is not None and answer.status == 200
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    expect(page.locator(".opblock")).to_have_count(operations, timeout=WAIT_MS)
    expect(page.locator(".info .title")).to_contain_text("Sync coordinator")
    assert complaints == []  # a script or style the policy refused would be reported here
    assert requested and all(url.startswith(f"{api.base_url}/") for url in requested), requested


def test_the_docs_files_are_served_and_nothing_else_of_the_package(api: Api) -> None:
    for name, kind in (
        ("docs.js", "javascript"),
        ("swagger-ui-bundle.js", "javascript"),
        ("swagger-ui.css", "text/css"),
    ):
        answer = httpx.get(f"{api.base_url}/docs/{name}")
        assert answer.status_code == 200 and kind in answer.headers["content-type"], name
        assert answer.headers["x-content-type-options"] == "nosniff"
    for gone in ("/redoc", "/docs/oauth2-redirect", "/docs/index.html", "/docs/../app.py"):
        assert httpx.get(f"{api.base_url}{gone}").status_code == 404, gone
