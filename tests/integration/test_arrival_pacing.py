"""Passes for new arrivals into a full cluster are paced; anything that may free room
is not: a host in this process on a real SQLite database, its runner's address a real
socket on 127.0.0.1 that takes orders without answering them (the tasks stay assigning,
holding their cores)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import ColumnElement, func, select

from kawa.host.app import Host, prepare_database
from kawa.host.auth import Principal
from kawa.host.scheduling import Dispatch
from kawa.protocol.nodes import NodeInventory, NodeRegistration
from kawa.protocol.tasks import TaskSpec
from kawa.settings import HostConfig
from kawa.store.models import Task

ADMIN = Principal("admin", "admin")
DEADLINE = 20.0


def make_host(tmp_path: Path) -> tuple[Host, list[float], list[float]]:
    """A host whose scheduler passes note when they start and end (monotonic)."""
    config = HostConfig(data_dir=tmp_path / "host", cluster_secret="s")
    host = Host(config, prepare_database(config))
    host.scheduler.idle_interval = 600.0  # only wakes start passes here
    starts: list[float] = []
    ends: list[float] = []
    one_pass = host.scheduler.schedule_once

    def timed() -> list[Dispatch]:
        starts.append(time.monotonic())
        try:
            return one_pass()
        finally:
            ends.append(time.monotonic())

    host.scheduler.schedule_once = timed  # type: ignore[method-assign]
    return host, starts, ends


def count(host: Host, *where: ColumnElement[bool]) -> int:
    with host.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(Task).where(*where)) or 0)


def reasoned(host: Host) -> int:
    """Pending tasks that a pass has given a waiting reason."""
    return count(host, Task.state == "pending", Task.waiting_reason != "queued")


async def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < deadline, f"not within {DEADLINE}s: {what}"
        await asyncio.sleep(0.01)


def with_cluster(host: Host, body: Callable[[Callable[[str], None]], Awaitable[None]]) -> None:
    """Run ``body(register)`` with the host's scheduler loop running and a silent runner."""

    async def main() -> None:
        async def silent(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()  # no answer: the order may have arrived, the task stays assigning

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        def register(name: str) -> None:
            inventory = NodeInventory(cores=2, memory=8 << 30)
            url = f"http://127.0.0.1:{port}/{name}"
            host.nodes.register(NodeRegistration(name=name, url=url, inventory=inventory))

        loop = asyncio.create_task(host.scheduler.run())
        try:
            await body(register)
        finally:
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)
            await host.scheduler.stop()
            await host.link.close()
            server.close()

    asyncio.run(main())


def one(name: str) -> TaskSpec:
    return TaskSpec(command=["true"], name=name, image="img")


def test_arrivals_into_a_full_cluster_are_given_reasons_at_a_paced_rate(tmp_path: Path) -> None:
    host, starts, ends = make_host(tmp_path)
    interval = 0.4
    host.scheduler.arrival_interval = 60.0  # were the fill paced, it would not finish
    arrivals = 12

    async def body(register: Callable[[str], None]) -> None:
        register("n1")
        for n in range(2):  # room for them: placed by a pass at once, not paced
            await asyncio.to_thread(host.tasks.submit, one(f"fill{n}"), ADMIN)
        await until(lambda: count(host, Task.state == "assigning") == 2, "the node filled")
        host.scheduler.arrival_interval = interval
        await asyncio.to_thread(host.tasks.submit, one("first"), ADMIN)
        await until(lambda: reasoned(host) == 1, "a pass saw the node full")
        first = len(starts)  # the passes from here on are woken by the arrivals
        for n in range(arrivals):  # one at a time, each waking the scheduler
            await asyncio.to_thread(host.tasks.submit, one(f"late{n}"), ADMIN)
            await asyncio.sleep(0.02)
        await until(lambda: reasoned(host) == 1 + arrivals, "every arrival got its reason")
        # each pass that gave them reasons began before they all had one
        paced = starts[first:]
        assert paced, "no pass gave the arrivals their reasons"
        # and began at least the interval after the pass before it ended
        gaps = [starts[i] - ends[i - 1] for i in range(first, len(paced) + first)]
        assert min(gaps) >= interval * 0.95, gaps
        assert len(paced) < arrivals  # the arrivals shared passes

    with_cluster(host, body)


def test_room_made_while_arrivals_wait_is_used_at_once(tmp_path: Path) -> None:
    host, _starts, _ends = make_host(tmp_path)

    async def body(register: Callable[[str], None]) -> None:
        register("n1")
        for n in range(2):
            await asyncio.to_thread(host.tasks.submit, one(f"fill{n}"), ADMIN)
        await until(lambda: count(host, Task.state == "assigning") == 2, "the node filled")
        await asyncio.to_thread(host.tasks.submit, one("first"), ADMIN)
        await until(lambda: reasoned(host) == 1, "a pass saw the node full")
        host.scheduler.arrival_interval = 60.0  # an arrival alone now waits this long
        await asyncio.to_thread(host.tasks.submit, one("late"), ADMIN)
        started = time.monotonic()
        register("n2")  # a new node: room, so the waiting arrival is placed now
        await until(lambda: count(host, Task.node == "n2") == 2, "both waiting placed on n2")
        assert time.monotonic() - started < DEADLINE

    with_cluster(host, body)
