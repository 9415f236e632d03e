"""The status page: static files shipped in the package, served under /ui/ ('/' leads there).

The page signs in with a bearer token it keeps in sessionStorage, taken from the URL
fragment (`/ui/#token=...`), which browsers never send to the server, so it reaches no log.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

PAGE_DIR = Path(__file__).parents[1] / "static"  # coordinator/api/static
PAGE_HEADERS = {
    # Only this origin's own files and API: no inline script, nothing from elsewhere.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


class PageFiles(StaticFiles):
    """The page's files with headers that keep the token on this page."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(PAGE_HEADERS)
        return response


# The page's icon (and any browser's /favicon.ico request): an envelope, drawn in SVG.
ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    '<rect x="1" y="3" width="14" height="10" rx="2" fill="#2563eb"/>'
    '<path d="M2 4l6 5 6-5" fill="none" stroke="#fff" stroke-width="1.5"/></svg>'
)


def install(app: FastAPI) -> None:
    """Serve the page at /ui/ and send / there."""

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=307)

    @app.get("/favicon.ico", include_in_schema=False)
    async def icon() -> Response:
        headers = {**PAGE_HEADERS, "Cache-Control": "max-age=86400"}
        return Response(ICON, media_type="image/svg+xml", headers=headers)

    app.mount("/ui", PageFiles(directory=PAGE_DIR, html=True), name="ui")
