"""Orders of a pass with another right behind it (it placed a full scan) wait for that
pass: a host in this process on a real SQLite database, its runners' addresses real
sockets on 127.0.0.1 that note when the first order arrives."""

from __future__ import annotations

import asyncio
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


def test_orders_wait_for_the_passes_right_behind_theirs(tmp_path: Path) -> None:
    config = HostConfig(data_dir=tmp_path / "host", cluster_secret="s")
    host = Host(config, prepare_database(config))
    host.scheduler.queue_scan = SCAN  # four passes: 10, 10, 10 and 5 tasks
    host.scheduler.idle_interval = 600.0  # only wakes start passes here
    passes: list[float] = []

    def slow_second_pass(_seconds: float) -> None:  # a window for early orders to go out
        passes.append(_seconds)
        if len(passes) == 2:  # (well inside the 2 s an order is held at most)
            time.sleep(0.5)

    host.scheduler.pass_observers.append(slow_second_pass)

    def assigning() -> int:
        with host.sessions() as s:
            query = select(func.count()).where(Task.state == "assigning")
            return int(s.scalar(query) or 0)

    async def main() -> int:
        first: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        came: list[int] = []

        async def runner(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            came.append(1)
            if len(came) == 1:  # how many were placed when the first order came
                first.set_result(await asyncio.to_thread(assigning))
            writer.close()  # no answer: the order may have arrived, the task stays assigning

        server = await asyncio.start_server(runner, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        inventory = NodeInventory(cores=20, memory=8 << 30)
        for name in ("n1", "n2"):
            url = f"http://127.0.0.1:{port}/{name}"
            host.nodes.register(NodeRegistration(name=name, url=url, inventory=inventory))
        spec = TaskSpec(command=["true", f"span:{{1..{TASKS}}}"], sweep=True, image="img")
        host.tasks.submit(spec, ADMIN)
        loop = asyncio.create_task(host.scheduler.run())
        try:
            return await asyncio.wait_for(first, 30)
        finally:
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)
            await host.scheduler.stop()
            await host.link.close()
            server.close()

    started = time.monotonic()
    assert asyncio.run(main()) == TASKS, "an order went out before the passes behind it"
    assert time.monotonic() - started < 30
