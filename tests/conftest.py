"""Shared test configuration: Docker availability is a failure, not a skip, under CI=true;
Ctrl-C reaches the commands the tests start, however the suite was launched."""

from __future__ import annotations

import os
import signal

import pytest

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    # A shell starts its background jobs with Ctrl-C ignored, and their children inherit
    # that: the CLIs the tests press Ctrl-C in would never see it. Python's own handler
    # here means they start with the default, as from a terminal.
    signal.signal(signal.SIGINT, signal.default_int_handler)

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
