"""Calls between host and runners leave no reference cycles for the garbage collector:
each response is freed as soon as it is dropped (an httpx response's stream refers back
to it, about forty objects a request, which a host sending thousands of orders freed
in collector passes of 30-45 ms that stopped every thread)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from kawa.client.runner_channel import HostChannel
from kawa.host.runner_link import RunnerLink
from kawa.protocol.runner_api import TaskReport
from tests.unit.test_runner_link_clients import Runner

CALLS = 50


@contextmanager
def collector_off() -> Iterator[list[int]]:
    """No collector passes inside; afterwards the cyclic objects they left, counted."""
    gc.collect()
    gc.disable()
    found: list[int] = []
    try:
        yield found
    finally:
        found.append(gc.collect())
        gc.enable()


async def cycles_left(call: Callable[[], Awaitable[object]]) -> int:
    """Cyclic objects left by ``CALLS`` calls (after one call made the connection)."""
    await call()
    with collector_off() as found:
        for _ in range(CALLS):
            await call()
    return found[0]


def test_the_hosts_calls_to_runners_leave_no_cycles() -> None:
    async def main() -> int:
        runner, link = Runner(), RunnerLink("secret")
        url = await runner.start()
        try:
            return await cycles_left(lambda: link.control(url, "1", "kill"))
        finally:
            await link.close()
            await runner.stop()

    left = asyncio.run(main())
    assert left < CALLS, f"{left} cyclic objects after {CALLS} calls"


def test_a_runners_reports_to_its_host_leave_no_cycles() -> None:
    report = TaskReport(task_id="1", node="n1", state="running", at=datetime.now(UTC))

    async def main() -> int:
        host = Runner()  # answers every call with 200 and a JSON body
        channel = HostChannel(await host.start(), "secret")
        try:
            return await cycles_left(lambda: channel.report(report))
        finally:
            await channel.aclose()
            await host.stop()

    left = asyncio.run(main())
    assert left < CALLS, f"{left} cyclic objects after {CALLS} calls"
