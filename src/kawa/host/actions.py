"""Carrying out the state machine's actions on a task's runner: the one place a
``SEND_*`` action becomes a control sent to the runner, and the runner's answer an
event (the task service and the heartbeat's reconciliation both use it)."""

from __future__ import annotations

import asyncio
import logging

from kawa.core.reports import confirmation
from kawa.core.task_states import Action, TaskEvent, TaskState
from kawa.host.errors import Conflict
from kawa.host.ledger import Ledger
from kawa.host.runner_link import RunnerLink, RunnerRejected, RunnerUnreachable
from kawa.store.models import Node, Task

log = logging.getLogger(__name__)

CONTROLS = {
    Action.SEND_KILL: "kill",
    Action.SEND_PAUSE: "pause",
    Action.SEND_RESUME: "resume",
    Action.SEND_STOP: "stop",
    Action.SEND_RESTART: "restart",
}
"""The control each action sends. ``SEND_REMOVE`` is not here: removing a VPS waits
for its runner's answer before the task changes (``TaskService.remove``); ``RELEASE``
needs nothing sent (the ledger wakes the scheduler)."""


class ActionRunner:
    def __init__(self, ledger: Ledger, link: RunnerLink) -> None:
        self.ledger = ledger
        self.link = link

    async def carry_out(self, action: Action, task_id: int, url: str | None) -> None:
        """Send ``action`` to the runner at ``url`` and apply what its answer confirms.

        A kill or stop that cannot reach the runner is left to the heartbeat's
        reconciliation, which sends it again; any other failure is a Conflict."""
        verb = CONTROLS.get(action)
        if verb is None or url is None:
            return
        try:
            ack = await self.link.control(url, str(task_id), verb)
        except RunnerUnreachable as exc:
            if action in (Action.SEND_KILL, Action.SEND_STOP):
                log.warning("kill of %s not delivered (%s); reconciliation retries", task_id, exc)
                return
            raise Conflict(f"cannot {verb}: the task's runner is unreachable") from None
        except RunnerRejected as exc:
            if (
                action is Action.SEND_KILL
                and exc.status == 409
                and await asyncio.to_thread(self._end_unstarted, task_id, url)
            ):
                return
            raise Conflict(f"runner refused to {verb} task {task_id}: {exc.detail}") from None
        confirm = confirmation(action, ack.state)
        if confirm is not None:
            done = "stopped and started the container" if verb == "restart" else f"{verb}d"
            await asyncio.to_thread(self._confirm, task_id, confirm, f"runner {done} the task")

    def _confirm(self, task_id: int, event: TaskEvent, cause: str) -> None:
        with self.ledger.change() as change:
            task = change.session.get(Task, task_id)
            if task is not None:
                change.try_apply(task, event, cause)

    def _end_unstarted(self, task_id: int, url: str) -> bool:
        """A kill the runner answered with "no such task": an assigning task it never
        got ends here, freeing what it held. (Should its order arrive after all, the
        scheduler kills what it started.)"""
        with self.ledger.change() as change:
            task = change.session.get(Task, task_id)
            if task is None or task.state != TaskState.ASSIGNING.value:
                return False
            node = change.session.get(Node, task.node) if task.node else None
            if node is None or node.url != url:
                return False
            cause = f"kill: runner {task.node} does not have the task"
            return change.try_apply(task, TaskEvent.KILLED_BEFORE_START, cause) is not None
