"""Serves the browser demo from the repository root: GET /demo/ is websocket_demo.html,
GET /demo/demo_assets/<file> a file of demo_assets/. Read-only, GET/HEAD only, and
confined to those two places (no path traversal, no directory listings)."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from django.conf import settings
from django.http import FileResponse, Http404, HttpRequest
from django.views.decorators.http import require_safe

DEMO_PAGE = "websocket_demo.html"
ASSETS_DIR = "demo_assets"


def _open(path: Path) -> FileResponse:
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if content_type.startswith("text/") or content_type.endswith("javascript"):
        content_type += "; charset=utf-8"
    response = FileResponse(path.open("rb"), content_type=content_type)
    response.headers["Cache-Control"] = "no-cache"
    return response


@require_safe
def demo_page(request: HttpRequest) -> FileResponse:
    path = Path(settings.BASE_DIR) / DEMO_PAGE
    if not path.is_file():
        raise Http404(f"{DEMO_PAGE} is not in this installation.")
    return _open(path)


def confined_file(root: Path, name: str) -> FileResponse:
    """The file ``name`` under ``root``, never anything outside it."""
    root = root.resolve()
    path = (root / name).resolve()
    # resolve() folds "..", symlinks and absolute parts: whatever remains must be inside root.
    if not path.is_relative_to(root) or not path.is_file() or path.name.startswith("."):
        raise Http404("No such file.")
    return _open(path)


@require_safe
def demo_asset(request: HttpRequest, name: str) -> FileResponse:
    return confined_file(Path(settings.BASE_DIR) / ASSETS_DIR, name)
