"""/dashboard: the usage dashboard, a static page and its ES modules packaged under
api/static/dashboard (no build step, no CDN). Its scripts call the API with the bearer the
person signs in with; the page itself needs no authentication.

Every response carries a strict Content-Security-Policy: scripts, styles and connections
only from this origin, no inline script or style, no framing."""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from chatter.errors import NotFound

STATIC_DIR = Path(str(files("chatter.api") / "static" / "dashboard"))
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The page is small and changes with the package: revalidate (ETag) on every load.
    "Cache-Control": "no-cache",
}
MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
ASSET_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*\.(?:js|css)$")

router = APIRouter(prefix="/dashboard", include_in_schema=False)


@cache
def served_assets() -> frozenset[str]:
    """The scripts and styles the page may load: the .js and .css files shipped beside it."""
    return frozenset(p.name for p in STATIC_DIR.iterdir() if ASSET_NAME.match(p.name))


def _file(path: Path, media_type: str) -> FileResponse:
    return FileResponse(path, media_type=media_type, headers=SECURITY_HEADERS)


@router.get("")
async def page() -> FileResponse:
    return _file(STATIC_DIR / "index.html", "text/html; charset=utf-8")


@router.get("/{name}")
async def asset(name: str) -> FileResponse:
    if name not in served_assets():
        raise NotFound("No such dashboard file.", details={"name": name})
    return _file(STATIC_DIR / name, MEDIA_TYPES[Path(name).suffix])
