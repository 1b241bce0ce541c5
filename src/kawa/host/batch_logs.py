"""A batch's logs in one answer: the output of each of its tasks that has started, oldest
task first, each line prefixed with the task's label (kawa.core.batch_output)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass

from sqlalchemy import select

from kawa.core.batch_output import PrefixedLines, line_prefix, task_label
from kawa.core.task_states import AWAITING_START, TaskKind, TaskState
from kawa.host.errors import Conflict, NotFound
from kawa.host.ledger import Ledger
from kawa.host.log_service import LogService
from kawa.store.models import Node, Task

MiB = 1024 * 1024
BATCH_LOG_LIMIT = 64 * MiB
"""Bytes of a batch's logs answered at most: whole lines, then a line saying so."""
LONGEST_LINE = MiB
"""A longer line of a task's output comes in pieces of this many bytes, each prefixed."""


@dataclass(frozen=True)
class BatchTask:
    """What reading one task's part of a batch's logs needs."""

    id: str
    label: str
    state: str
    url: str | None
    """Its node's runner, None when it has no node."""


class BatchLogs:
    def __init__(self, ledger: Ledger, logs: LogService, limit: int = BATCH_LOG_LIMIT) -> None:
        self.ledger = ledger
        self.logs = logs
        self.limit = limit

    def tasks(self, batch_id: int, owner: str | None) -> list[BatchTask]:
        """The batch's command tasks, oldest first; ``owner`` (a non-admin caller) keeps
        only theirs. NotFound when none is left. Blocks."""
        query = (
            select(Task.id, Task.state, Task.target, Task.env, Task.node, Node.url)
            .outerjoin(Node, Node.name == Task.node)
            .where(Task.batch_id == batch_id, Task.kind == TaskKind.COMMAND.value)
            .order_by(Task.id)
        )
        if owner is not None:
            query = query.where(Task.owner == owner)
        with self.ledger.sessions() as s:
            rows = s.execute(query).all()
        if not rows:
            raise NotFound(f"no tasks in batch {batch_id}")
        return [
            BatchTask(
                str(i), task_label(env.get("KAWA_SWEEP_ARGS"), target, str(i), node), state, url
            )
            for i, state, target, env, node, url in rows
        ]

    async def merged(self, tasks: Sequence[BatchTask], stream: str) -> AsyncGenerator[bytes, None]:
        """The tasks' ``stream`` (checked) as it is now, lines prefixed; tasks that have
        not started or never ran are left out. Past ``limit`` bytes it ends with a note."""
        left = self.limit
        for task in tasks:
            async with contextlib.aclosing(self._prefixed(task, stream)) as lines:
                async for out in lines:
                    if len(out) > left:
                        yield out[: out.rfind(b"\n", 0, left) + 1]
                        yield cut_note(self.limit)
                        return
                    left -= len(out)
                    yield out

    async def _prefixed(self, task: BatchTask, stream: str) -> AsyncGenerator[bytes, None]:
        if TaskState(task.state) in AWAITING_START:
            return
        try:
            body = self.logs.read(task.id, task.state, task.url, stream, False, 0)
        except (Conflict, NotFound):  # it never ran: no output
            return
        lines = PrefixedLines(line_prefix(task.label), LONGEST_LINE)
        async with contextlib.aclosing(body):
            async for chunk in body:
                if out := lines.feed(chunk):
                    yield out
        if out := lines.end():
            yield out


def cut_note(limit: int) -> bytes:
    """The line that ends a batch's logs cut at ``limit`` bytes."""
    size = f"{limit // MiB} MiB" if limit % MiB == 0 else f"{limit} bytes"
    return f"[kawa] cut here at {size}: read each task's log for the rest\n".encode()
