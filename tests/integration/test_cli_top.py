"""``kawa top`` driven by Textual's pilot against a real cluster at 80x24: nodes with
their bars, a task that appears in the running list and leaves it when it ends, a
queued task with its waiting reason, and ``q`` quits."""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.pilot import Pilot
from textual.widgets import Static

from kawa.cli.top import TopApp
from kawa.protocol.tasks import TaskAction, TaskSpec
from tests.integration.cluster import Cluster


async def until(pilot: Pilot[None], check: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + 30
    while not check():
        app = pilot.app
        assert isinstance(app, TopApp)
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {shown(app, 'status')}"
        await pilot.pause(0.05)


def shown(app: TopApp, widget: str) -> str:
    """The widget's text as rendered at the app's width."""
    from rich.console import Console

    console = Console(width=80, file=None, color_system=None)
    with console.capture() as captured:
        console.print(app.query_one(f"#{widget}", Static).content)
    return captured.get()


async def test_a_task_appears_and_ends(cluster: Cluster) -> None:
    with cluster.client() as c:
        app = TopApp(c)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: "node1" in shown(app, "nodes"), "the nodes")
            assert "node2" in shown(app, "nodes") and "%" in shown(app, "nodes")
            [t] = c.submit(TaskSpec(command=["sleep", "300"], targets=["node1"], cores=2)).tasks
            await until(pilot, lambda: t.id[-8:] in shown(app, "running"), "the task to run")
            [queued] = c.submit(TaskSpec(command=["true"], targets=["node1"], cores=2)).tasks
            await until(pilot, lambda: queued.id[-8:] in shown(app, "queue"), "the queue")
            reason = c.task(queued.id).waiting_reason
            assert reason and reason[:10] in shown(app, "queue"), shown(app, "queue")
            c.act(t.id, TaskAction.KILL)
            await until(pilot, lambda: t.id[-8:] not in shown(app, "running"), "the end")
            c.wait([queued.id], timeout=60)
            await until(pilot, lambda: queued.id[-8:] not in shown(app, "queue"), "queue empty")
            await pilot.press("q")
        assert app.return_code in (0, None)
