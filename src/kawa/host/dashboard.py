"""The web dashboard: the built single-page app (``web/`` → ``kawa/web/dist``) served at ``/``.

Hashed files under ``/assets/`` never change under one name, so browsers may keep them
for a year; ``index.html`` and the other top-level files are revalidated on every load,
so a new build is picked up at once. Any other GET outside ``/api/`` is a route of the
app and answers ``index.html``. Without a build, every such GET answers 404 with a short
page saying how to build it. The files are public: the data behind them needs a token.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.convertors import Convertor, register_url_convertor

DIST = Path(__file__).resolve().parent.parent / "web" / "dist"
"""Where ``vite build`` writes the app (package data of an installed Kawa)."""

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"

NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Kawa</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>Kawa</h1>
<p>The dashboard has not been built, so there is nothing to show here. The API works
as usual under <a href="/docs">/api/v1</a>.</p>
<p>To build it (needs Node.js and npm):
<code>cd web &amp;&amp; npm ci &amp;&amp; npm run build</code>,
or run <code>scripts/bootstrap.sh</code>, then reload this page.</p>
</body></html>
"""


class AppPath(Convertor[str]):
    """A path of the app: anything but ``api`` and what lies under it, so that any
    method on an unknown API path still answers the API's own 404."""

    regex = r"(?!api(?:/|$)).*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("kawa_app_path", AppPath())


def dashboard_router(dist: Path = DIST) -> APIRouter:
    """GET routes for the app in ``dist``; include it after every API router."""
    router = APIRouter(include_in_schema=False)
    root = dist.resolve()

    def _file(path: str) -> Path | None:
        """The built file at ``path``, or None (missing, a folder, or outside ``dist``)."""
        if not path or "\x00" in path:
            return None
        candidate = (root / path).resolve()
        if not candidate.is_relative_to(root) or not candidate.is_file():
            return None
        return candidate

    def _index() -> Response:
        index = root / "index.html"
        if not index.is_file():
            return HTMLResponse(NOT_BUILT, status_code=404, headers={"Cache-Control": REVALIDATE})
        return FileResponse(index, media_type="text/html", headers={"Cache-Control": REVALIDATE})

    @router.api_route("/", methods=["GET", "HEAD"])
    async def index() -> Response:
        return _index()

    @router.api_route("/{path:kawa_app_path}", methods=["GET", "HEAD"])
    async def app_path(path: str) -> Response:
        found = _file(path)
        if path.startswith("assets/"):
            if found is None:
                raise HTTPException(404, f"no such asset: /{path}")
            return FileResponse(found, headers={"Cache-Control": IMMUTABLE})
        if found is not None:
            return FileResponse(found, headers={"Cache-Control": REVALIDATE})
        return _index()

    return router
