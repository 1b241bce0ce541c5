"""A runner stops when told to. Its report loop ends when it is cancelled, even when a
task's ending comes at the same moment (a runner service in this process with a real
journal); and a runner process ends on SIGTERM while a task runs and its log is followed
(a real host, runner and Docker), leaving the task running for its next start."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path

from kawa.cli.serve import SHUTDOWN_GRACE
from kawa.protocol.tasks import TaskSpec
from kawa.runner.gpus import default_probe
from kawa.runner.inventory import Inventory
from kawa.runner.service import RunnerService
from kawa.settings import RunnerConfig
from tests.integration.cluster import Cluster, eventually

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


def test_a_runner_stops_on_sigterm_while_a_followed_task_runs(fresh_cluster: Cluster) -> None:
    """The log's request stays open on the runner (the task prints nothing more): the
    runner cancels it after its grace period and ends; the task is still there."""
    cluster = fresh_cluster
    cluster.add_runner("node1", cores=1)
    with cluster.client() as c:
        [task] = c.submit(TaskSpec(command=["sh", "-c", "echo begun; sleep 600"])).tasks
        eventually(lambda: c.task(task.id).state == "running", what="the task running")
    seen: list[bytes] = []

    def follow() -> None:
        try:
            with cluster.client() as c:
                for chunk in c.logs(task.id, follow=True):
                    seen.append(chunk)
        except Exception:  # the runner went away under it: expected here
            pass

    threading.Thread(target=follow, daemon=True).start()
    eventually(lambda: b"begun" in b"".join(seen), what="the log followed")
    started = time.monotonic()
    cluster.stop_runner("node1", signal.SIGTERM)  # TimeoutExpired after 30 s
    assert time.monotonic() - started < SHUTDOWN_GRACE + 15
    assert [x.id for x in cluster.containers(task=task.id)], "the task's container was removed"
