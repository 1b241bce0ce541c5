"""Shared test configuration: Docker availability is a failure, not a skip, under CI=true."""

from __future__ import annotations

import os

import pytest

BASE_IMAGE = os.environ.get("KAWA_TEST_BASE_IMAGE", "kawa/base:bookworm")


def docker_ready() -> str | None:
    """None when the daemon answers and the base image exists, else why not."""
    try:
        import docker

        client = docker.from_env(timeout=10)
        client.ping()
        client.images.get(BASE_IMAGE)
    except Exception as exc:
        return f"Docker or the base image {BASE_IMAGE} is unavailable: {exc}"
    return None


@pytest.fixture(scope="session")
def docker_available() -> None:
    problem = docker_ready()
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{problem} (CI=true: Docker tests must run)")
    pytest.skip(problem)
