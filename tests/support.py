"""Helpers shared by the tests: waiting with a deadline, run orders as the host sends
them, and submitting and viewing one task on a test cluster."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from kawa.client import KawaClient
from kawa.protocol.runner_api import RunTask
from kawa.protocol.tasks import TaskSpec, TaskView

T = TypeVar("T")


# -- waiting ---------------------------------------------------------------------------


def when(value: T, condition: object) -> T | None:
    """``value`` if ``condition`` holds, else None: an ``eventually`` check that returns
    what it looked at, typed as that (``when(t := view(...), t.state == "running")``)."""
    return value if condition else None


def eventually(check: Callable[[], T | None], timeout: float = 30.0, what: str = "") -> T:
    """Poll ``check`` until it returns something truthy, failing after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check}: {last!r}")


async def until(check: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    """Poll ``check`` (on the event loop) until it holds; fail after ``timeout`` s."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")
        await asyncio.sleep(0.01)


# -- run orders ------------------------------------------------------------------------


def run_order_fields(**fields: Any) -> dict[str, Any]:
    """A runner's ``POST /tasks`` body: a one-core ``true`` command task unless
    ``fields`` say otherwise."""
    base: dict[str, Any] = {
        "task_id": "42",
        "kind": "command",
        "command": ["true"],
        "image": "",
        "env": {},
        "mounts": [],
        "cores": 1,
        "memory": None,
        "gpu_ids": [],
        "numa": None,
        "cpuset": [],
        "privileged": False,
        "workdir": None,
        "network": "host",
        "timeout": None,
    }
    return base | fields


def run_order(**fields: Any) -> RunTask:
    """:func:`run_order_fields` as the validated wire model."""
    return RunTask.model_validate(run_order_fields(**fields))


# -- tasks on a test cluster -----------------------------------------------------------


class HasClient(Protocol):
    def client(self) -> KawaClient: ...


def submit(cluster: HasClient, *command: str, **spec: Any) -> TaskView:
    """Submit one task running ``command`` (default ``true``, or ``spec``'s own); its view."""
    if command:
        spec["command"] = list(command)
    spec.setdefault("command", ["true"])
    with cluster.client() as client:
        [task] = client.submit(TaskSpec(**spec)).tasks
    return task


def view(cluster: HasClient, task_id: str) -> TaskView:
    with cluster.client() as client:
        return client.task(task_id)

