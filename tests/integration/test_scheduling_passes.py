"""Scheduling passes of a host in this process, on a real SQLite database: a queue longer
than one pass reads is placed pass after pass at once, not a pass per idle interval."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

from sqlalchemy import func, select

from kawa.host.app import Host, prepare_database
from kawa.host.auth import Principal
from kawa.host.views import task_view
from kawa.protocol.nodes import NodeInventory, NodeRegistration
from kawa.protocol.tasks import TaskSpec, TaskView
from kawa.settings import HostConfig
from kawa.store.models import Task

ADMIN = Principal("admin", "admin")
SCAN = 10
TASKS = 35


def closed_port() -> int:
    """A port nothing listens on (bound, then released: connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_queue_longer_than_the_scan_is_placed_without_waiting_for_idle_passes(
    tmp_path: Path,
) -> None:
    config = HostConfig(data_dir=tmp_path / "host", cluster_secret="s")
    host = Host(config, prepare_database(config))
    host.scheduler.queue_scan = SCAN
    host.scheduler.idle_interval = 600.0  # only wakes start passes here
    inventory = NodeInventory(cores=20, memory=8 << 30)
    for name in ("n1", "n2"):  # orders are never taken: the tasks stay assigning
        url = f"http://127.0.0.1:{closed_port()}"
        host.nodes.register(NodeRegistration(name=name, url=url, inventory=inventory))
    spec = TaskSpec(command=["true", f"span:{{1..{TASKS}}}"], sweep=True, image="img")
    host.tasks.submit(spec, ADMIN)

    def assigning() -> int:
        with host.sessions() as s:
            query = select(func.count()).where(Task.state == "assigning")
            return int(s.scalar(query) or 0)

    async def main() -> int:
        loop = asyncio.create_task(host.scheduler.run())
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline:
                placed = await asyncio.to_thread(assigning)
                if placed == TASKS:
                    return placed
                await asyncio.sleep(0.05)
            return await asyncio.to_thread(assigning)
        finally:
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)
            await host.scheduler.stop()
            await host.link.close()

    assert asyncio.run(main()) == TASKS


def test_a_pass_publishes_what_it_wrote_as_the_tasks_views_read_back(tmp_path: Path) -> None:
    """Placements and waiting reasons are written by statement, not entity: the views
    published for them are what the tasks read back after the commit give."""
    config = HostConfig(data_dir=tmp_path / "host", cluster_secret="s")
    host = Host(config, prepare_database(config))
    inventory = NodeInventory(cores=2, memory=8 << 30)
    url = f"http://127.0.0.1:{closed_port()}"
    host.nodes.register(NodeRegistration(name="n1", url=url, inventory=inventory))
    spec = TaskSpec(command=["true", "span:{1..3}"], sweep=True, image="img", cores=2)
    host.tasks.submit(spec, ADMIN)
    published: list[TaskView] = []
    publish = host.bus.publish_task

    def seen(view: TaskView) -> None:
        published.append(view)
        publish(view)

    host.bus.publish_task = seen  # type: ignore[method-assign,assignment]
    jobs = host.scheduler.schedule_once()
    assert len(jobs) == 1 and jobs[0].node == "n1"
    with host.sessions() as s:
        stored = {str(t.id): task_view(t) for t in s.scalars(select(Task))}
    last = {view.id: view for view in published}  # the latest view of each task
    assert last == stored
    assert sorted(v.state.value for v in last.values()) == ["assigning", "pending", "pending"]
    placed = next(v for v in last.values() if v.state.value == "assigning")
    assert placed.node == "n1" and placed.waiting_reason is None
    assert all(
        v.waiting_reason not in (None, "queued")
        for v in last.values()
        if v.state.value == "pending"
    )
