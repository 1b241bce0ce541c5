"""``kawa task list --watch``: the task table kept up to date in place from the host's
event stream (read once, then changed by each task event; ages refresh every second)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kawa.cli.context import client

if TYPE_CHECKING:
    from rich.table import Table

    from kawa.protocol.tasks import TaskView


class TaskTable:
    """The tasks a ``kawa task list`` with these filters shows, newest first."""

    def __init__(
        self, states: list[str] | None, node: str | None, batch: str | None, limit: int
    ) -> None:
        self.states, self.node, self.batch, self.limit = states, node, batch, limit
        self.views: dict[str, TaskView] = {}

    def matches(self, t: TaskView) -> bool:
        return (
            t.kind.value == "command"
            and (not self.states or t.state.value in self.states)
            and (self.node is None or t.node == self.node)
            and (self.batch is None or t.batch_id == self.batch)
        )

    def reset(self, tasks: list[TaskView]) -> None:
        self.views = {t.id: t for t in tasks}

    def seen(self, t: TaskView) -> None:
        if self.matches(t):
            self.views[t.id] = t
        else:
            self.views.pop(t.id, None)

    def rows(self) -> list[TaskView]:
        newest = sorted(self.views.values(), key=lambda t: int(t.id), reverse=True)
        return newest[: self.limit]


def watch_tasks(
    states: list[str] | None, node: str | None, batch: str | None, limit: int, wide: bool
) -> None:
    """Show the table until Ctrl-C, redrawn in place (no flicker: rich Live)."""
    from rich.live import Live

    from kawa.cli.output import console
    from kawa.cli.tables import render, screen_width, select
    from kawa.cli.tasks import TASK_COLUMNS, TASK_FLEX, TASK_WIDE_ONLY, task_row

    table = TaskTable(states, node, batch, limit)

    def draw() -> Table:
        width = None if wide else screen_width()
        rows = [task_row(t) for t in table.rows()]
        columns, shown = select(TASK_COLUMNS, rows, TASK_WIDE_ONLY, wide)
        return render(columns, shown, width, TASK_FLEX)

    with client() as c, Live(draw(), console=console, auto_refresh=False) as live:
        try:
            for event in c.follow_events(tick=1.0):
                if event is not None and event.type == "hello":  # (re)subscribed
                    table.reset(c.tasks(states, node, batch, "command", limit))
                elif event is not None and event.task is not None:
                    table.seen(event.task)
                live.update(draw(), refresh=True)
        except KeyboardInterrupt:
            return
