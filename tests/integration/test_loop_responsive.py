"""The host's event loop keeps serving while the scheduler works through thousands of
pending tasks: the pass reads and writes in a worker thread, and its task events still
reach subscribers on the loop, every one of them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from kawa.host.app import Host, prepare_database, register_environment
from kawa.host.auth import Principal
from kawa.protocol.nodes import NodeInventory, NodeRegistration
from kawa.protocol.tasks import TaskSpec
from kawa.settings import HostConfig
from tests.conftest import BASE_IMAGE

ADMIN = Principal("admin", "admin")
PENDING = 5000
TICK = 0.005


def test_the_loop_keeps_serving_during_a_pass_over_thousands_of_pending_tasks(
    tmp_path: Path,
) -> None:
    config = HostConfig(data_dir=tmp_path / "host", cluster_secret="s")
    sessions = prepare_database(config)
    register_environment(sessions, config.default_container, BASE_IMAGE)
    host = Host(config, sessions)
    inventory = NodeInventory(cores=4, memory=8 << 30)
    host.nodes.register(NodeRegistration(name="n1", url="http://127.0.0.1:9", inventory=inventory))
    host.nodes.set_draining("n1", True, ADMIN)  # nothing can start: every task waits
    host.scheduler.queue_scan = PENDING  # one pass gives every task its waiting reason
    passes: list[float] = []
    host.scheduler.pass_observers.append(passes.append)
    spec = TaskSpec(command=["echo", f"span:{{1..{PENDING}}}"], sweep=True)
    ids = {t.id for t in host.tasks.submit(spec, ADMIN).tasks}

    async def main() -> tuple[list[float], set[str]]:
        lags: list[float] = []
        told: set[str] = set()
        with host.bus.subscribe() as sub:
            loops = asyncio.create_task(host.run_loops())
            deadline = time.monotonic() + 120
            try:
                while len(told) < PENDING and time.monotonic() < deadline:
                    asked = time.perf_counter()
                    await asyncio.sleep(TICK)
                    lags.append(time.perf_counter() - asked - TICK)
                    while not sub.queue.empty():
                        event = sub.queue.get_nowait()
                        if event and event.task and event.task.waiting_reason != "queued":
                            told.add(event.task.id)
            finally:
                loops.cancel()
                await asyncio.gather(loops, return_exceptions=True)
                await host.scheduler.stop()
                await host.link.close()
        return lags, told

    lags, told = asyncio.run(main())
    assert told == ids, f"{len(ids - told)} tasks' waiting reasons never reached the loop"
    longest = max(passes)
    assert longest > 0.05, "the pass was too small to show anything"
    # On the loop, the pass would hold it for its whole length: no tick could be shorter.
    assert max(lags) < max(0.5 * longest, 0.1), (max(lags), longest)
