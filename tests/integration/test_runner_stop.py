"""The runner's report loop ends when it is cancelled, even when a task's ending comes
at the same moment (as when a runner stops while its tasks end): a runner service in
this process with a real journal; nothing is sent, as no ending is journaled."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from kawa.runner.gpus import default_probe
from kawa.runner.inventory import Inventory
from kawa.runner.service import RunnerService
from kawa.settings import RunnerConfig

DEADLINE = 20.0


def test_a_cancel_that_comes_with_an_ending_ends_the_report_loop(tmp_path: Path) -> None:
    config = RunnerConfig(name="n1", data_dir=tmp_path / "runner", cluster_secret="s")

    def no_executor(*_: object) -> None:
        raise AssertionError("no executor is built here")

    service = RunnerService(config, Inventory(default_probe()), no_executor)  # type: ignore[arg-type]

    async def main() -> None:
        service._loop = asyncio.get_running_loop()
        for _ in range(20):  # each time: the loop waiting, then an ending and a cancel at once
            reports = asyncio.create_task(service._send_reports())
            try:
                deadline = time.monotonic() + DEADLINE
                while not service._reports._waiters:
                    assert time.monotonic() < deadline, "the loop never waited for an ending"
                    await asyncio.sleep(0.01)
                service._ended()
                reports.cancel()
                done, _ = await asyncio.wait({reports}, timeout=DEADLINE)
                assert reports in done, "the report loop went on after it was cancelled"
                assert reports.cancelled()
            finally:
                reports.cancel()
                await asyncio.gather(reports, return_exceptions=True)
        await service.close()

    asyncio.run(main())
