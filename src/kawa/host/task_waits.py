"""Long-poll waits on one task: the answer comes when the task has started (or ended),
or when it is done, or at the caller's deadline with the task as it is then. Driven by
the event bus, so a client needs no WebSocket to follow a task."""

from __future__ import annotations

import asyncio

from kawa.core.task_states import AWAITING_START, WAIT_DONE_STATES
from kawa.host.auth import Principal
from kawa.host.events import EventBus
from kawa.host.task_service import TaskService
from kawa.protocol.task_queries import WaitFor
from kawa.protocol.tasks import TaskView


def reached(view: TaskView, wait_for: WaitFor) -> bool:
    if wait_for is WaitFor.DONE:
        return view.state in WAIT_DONE_STATES
    return view.state not in AWAITING_START


class TaskWaits:
    def __init__(self, tasks: TaskService, bus: EventBus) -> None:
        self.tasks = tasks
        self.bus = bus

    async def wait(self, ref: str, who: Principal, wait_for: WaitFor, timeout: float) -> TaskView:
        """The task once ``wait_for`` holds, or as it is after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with self.bus.subscribe() as sub:
            # read after subscribing (no change is missed), in a worker thread
            view = await asyncio.to_thread(self.tasks.get, ref, who)
            while not reached(view, wait_for):
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    event = await asyncio.wait_for(sub.queue.get(), left)
                except TimeoutError:
                    break
                if event is None:  # cut off as a slow subscriber: answer what is stored
                    return await asyncio.to_thread(self.tasks.get, ref, who)
                if event.task is not None and event.task.id == view.id:
                    view = event.task
        return view
