"""The OpenAPI page at /docs: Swagger UI from a package (swagger-ui-bundle-v2), not a CDN.

FastAPI's own /docs loads Swagger UI from a CDN without subresource integrity, on the same
origin as the status page (whose token a script from elsewhere could read), and shows nothing
on a machine without internet; its page also starts Swagger UI with an inline script. Here
the page, its starter and Swagger UI's two files are this API's own, under the status page's
Content-Security-Policy (no inline script, nothing from another origin).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI
from starlette.responses import FileResponse, Response
from swagger_ui_bundle import swagger_ui_path

from coordinator.api.routes.page import PAGE_HEADERS

PAGE = Path(__file__).parents[1] / "docs_page"  # coordinator/api/docs_page
FILES = {  # what /docs/{name} serves: nothing else of either folder
    "docs.js": PAGE / "docs.js",
    "swagger-ui.css": Path(swagger_ui_path) / "swagger-ui.css",
    "swagger-ui-bundle.js": Path(swagger_ui_path) / "swagger-ui-bundle.js",
}


def install(app: FastAPI) -> None:
    """Serve the page at /docs and its files under /docs/ (the app is made with docs_url=None)."""

    @app.get("/docs", include_in_schema=False)
    async def page() -> Response:
        return FileResponse(PAGE / "index.html", headers=PAGE_HEADERS)

    for name, path in FILES.items():
        app.add_api_route(f"/docs/{name}", _serving(path), include_in_schema=False)


def _serving(path: Path) -> Callable[[], Awaitable[Response]]:
    async def serve() -> Response:
        return FileResponse(path, headers=PAGE_HEADERS)

    return serve
