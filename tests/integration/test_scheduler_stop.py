"""The scheduler's loop ends when it is cancelled, even when a wake-up comes at the same
moment (as at a host's shutdown with work arriving): a host in this process on a real
SQLite database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from kawa.host.app import Host, prepare_database
from kawa.settings import HostConfig

DEADLINE = 20.0


async def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < deadline, f"not within {DEADLINE}s: {what}"
        await asyncio.sleep(0.01)


def test_a_cancel_that_comes_with_a_wake_up_ends_the_loop(tmp_path: Path) -> None:
    config = HostConfig(data_dir=tmp_path / "host", cluster_secret="s")
    host = Host(config, prepare_database(config))
    host.scheduler.idle_interval = 600.0  # only a wake-up ends its wait

    async def main() -> None:
        scheduler = host.scheduler
        for _ in range(20):  # each time: the loop waiting, then a wake-up and a cancel at once
            loop = asyncio.create_task(scheduler.run())
            try:
                await until(lambda: bool(scheduler._wake._waiters), "the loop waits for work")
                scheduler.wake()
                loop.cancel()
                done, _ = await asyncio.wait({loop}, timeout=DEADLINE)
                assert loop in done, "the loop went on after it was cancelled"
                assert loop.cancelled()
            finally:
                loop.cancel()
                await asyncio.gather(loop, return_exceptions=True)
        await scheduler.stop()
        await host.link.close()

    asyncio.run(main())
