"""The page at `/ui/`: static files (services/static/) that call the public JSON API like any client.

Plain routes, not API routes: the page must load before a user has typed an API key, and the guard
admits only API routes; everything the page then asks for goes through the API and its guard.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response

STATIC = Path(__file__).resolve().parent / "static"
# What the page is made of, fixed at start: nothing else under the folder is served.
FILES = {path.name: path for path in STATIC.iterdir() if path.is_file() and not path.name.startswith(".")}
# The page fetches nothing from elsewhere; the browser is told so too.
CSP = "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'"

router = APIRouter()


async def to_folder(request: Request) -> Response:
    """`/ui` -> `/ui/`, so the page's relative links resolve under it (also behind a path prefix)."""
    return RedirectResponse("ui/", status_code=307)


async def page_file(request: Request) -> Response:
    name = request.path_params.get("name") or "index.html"
    path = FILES.get(name)
    if path is None:
        return PlainTextResponse(f"no file {name[:80]!r} in the page", status_code=404)
    return FileResponse(path, headers={"Cache-Control": "no-cache", "Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"})


router.add_route("/ui", to_folder, methods=["GET", "HEAD"], include_in_schema=False)
router.add_route("/ui/", page_file, methods=["GET", "HEAD"], include_in_schema=False)
router.add_route("/ui/{name}", page_file, methods=["GET", "HEAD"], include_in_schema=False)
