"""The dashboard's files as the host serves them: caching, app routes, no build."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from kawa.host.dashboard import IMMUTABLE, REVALIDATE, dashboard_router


def app_for(dist: Path) -> httpx.AsyncClient:
    app = FastAPI()

    @app.get("/api/v1/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(dashboard_router(dist))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kawa")


@pytest.fixture
def built(tmp_path: Path) -> Path:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><title>Kawa</title><div id=app></div>")
    (dist / "assets" / "index-abc123.js").write_text("console.log('app')")
    (dist / "favicon.svg").write_text("<svg/>")
    (tmp_path / "secret.txt").write_text("outside the build")
    return dist


async def test_index_is_revalidated_and_assets_are_immutable(built: Path) -> None:
    async with app_for(built) as client:
        index = await client.get("/")
        assert index.status_code == 200
        assert "<div id=app>" in index.text
        assert index.headers["cache-control"] == REVALIDATE
        asset = await client.get("/assets/index-abc123.js")
        assert asset.status_code == 200 and asset.text == "console.log('app')"
        assert asset.headers["cache-control"] == IMMUTABLE
        assert "javascript" in asset.headers["content-type"]
        icon = await client.get("/favicon.svg")
        assert icon.status_code == 200 and icon.headers["cache-control"] == REVALIDATE


async def test_app_routes_answer_index_and_api_paths_stay_api(built: Path) -> None:
    async with app_for(built) as client:
        for path in ("/tasks", "/tasks/12", "/nodes", "/terminal/tasks/3"):
            r = await client.get(path)
            assert r.status_code == 200, path
            assert "<div id=app>" in r.text
        assert (await client.get("/api/v1/health")).json() == {"status": "ok"}
        missing = await client.get("/api/v1/no-such-thing")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/json"
        assert (await client.get("/assets/gone-000.js")).status_code == 404
        for method in ("POST", "PUT", "DELETE"):  # not 405: the path is not the app's
            answer = await client.request(method, "/api/v1/no-such-thing")
            assert answer.status_code == 404, method
        assert (await client.get("/api")).status_code == 404


async def test_paths_outside_the_build_are_not_served(built: Path) -> None:
    async with app_for(built) as client:
        for path in ("/../secret.txt", "/assets/../../secret.txt", "/%2e%2e/secret.txt"):
            r = await client.get(path)
            assert "outside the build" not in r.text, path


async def test_without_a_build_a_page_says_how_to_build(tmp_path: Path) -> None:
    async with app_for(tmp_path / "never-built") as client:
        for path in ("/", "/tasks"):
            r = await client.get(path)
            assert r.status_code == 404
            assert "npm ci" in r.text and "has not been built" in r.text
        assert (await client.get("/api/v1/health")).status_code == 200
