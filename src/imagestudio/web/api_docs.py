"""/api/docs without a CDN: Swagger UI's script and styles ship in the fastapi-offline package and the studio serves
them itself, so the page works offline; a script file of ours starts it (nothing inline, a strict policy holds)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_PATH = "/api/docs"
ASSETS_PATH = f"{DOCS_PATH}/assets"
OAUTH2_REDIRECT_PATH = f"{DOCS_PATH}/oauth2-redirect"
SWAGGER_UI_DIR = Path(str(files("fastapi_offline") / "static"))
# Swagger UI sets style attributes as it renders; scripts stay same-origin files only.
DOCS_CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)

router = APIRouter(include_in_schema=False)


def docs_page(openapi_url: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Image Studio API</title>
  <link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
  <link rel="stylesheet" href="{ASSETS_PATH}/swagger-ui.css">
</head>
<body>
  <main id="swagger-ui" data-openapi-url="{openapi_url}" data-oauth2-redirect-url="{OAUTH2_REDIRECT_PATH}"></main>
  <script src="{ASSETS_PATH}/swagger-ui-bundle.js"></script>
  <script src="/static/js/api-docs.js"></script>
</body>
</html>
"""


def install(app: FastAPI) -> None:
    """Serves Swagger UI's files under /api/docs/assets and the page at /api/docs."""
    page = docs_page(app.openapi_url or "/openapi.json")

    @router.get(DOCS_PATH, response_class=HTMLResponse)
    def api_docs() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": DOCS_CONTENT_SECURITY_POLICY})

    @router.get(OAUTH2_REDIRECT_PATH, response_class=HTMLResponse)
    def api_docs_oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    app.include_router(router)
    app.mount(ASSETS_PATH, StaticFiles(directory=str(SWAGGER_UI_DIR)), name="api-docs-assets")
