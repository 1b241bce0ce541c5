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
from kawa.protocol.nodes import NodeInventory, NodeRegistration
from kawa.protocol.tasks import TaskSpec
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
