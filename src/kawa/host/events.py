"""In-process publish/subscribe of task and node changes, feeding the event stream."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

from kawa.protocol.events import Event
from kawa.protocol.nodes import NodeView
from kawa.protocol.tasks import TaskView


class Subscription:
    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(size)
        self.overflowed = False

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            event = await self.queue.get()
            if event is None:
                return
            yield event


class EventBus:
    """Fan-out to subscribers; a subscriber that falls too far behind is cut off
    (its stream ends, and the client re-reads state when it reconnects)."""

    def __init__(self, queue_size: int = 10_000) -> None:
        self._subs: set[Subscription] = set()
        self._seq = itertools.count(1)
        self._size = queue_size

    def publish_task(self, task: TaskView) -> None:
        self._publish(Event(seq=next(self._seq), type="task", task=task))

    def publish_node(self, node: NodeView) -> None:
        self._publish(Event(seq=next(self._seq), type="node", node=node))

    def _publish(self, event: Event) -> None:
        for sub in list(self._subs):
            if sub.overflowed:
                continue
            if sub.queue.qsize() >= self._size - 1:
                sub.overflowed = True
                sub.queue.put_nowait(None)
            else:
                sub.queue.put_nowait(event)

    @contextmanager
    def subscribe(self) -> Iterator[Subscription]:
        sub = Subscription(self._size)
        self._subs.add(sub)
        try:
            yield sub
        finally:
            self._subs.discard(sub)

    def close(self) -> None:
        for sub in self._subs:
            sub.queue.put_nowait(None)
