"""In-process publish/subscribe of task and node changes, feeding the event stream.

Services publish from worker threads as well as from the event loop; subscribers are
served on the loop. An event published elsewhere waits in an outbox that the loop
empties (``call_soon_threadsafe``), so subscribers' queues are only touched on the loop
and events arrive in the order they were published.

Sequence numbers rise by one per event and start, in each host process, at the
microseconds since the epoch when it started: a later process never reuses an earlier
one's numbers, so a client that reconnects after a host restart with an old number is
told to reset instead of being sent the wrong events. (They stay below 2**53, exact in
a JavaScript number.)
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager

from kawa.protocol.events import Event
from kawa.protocol.nodes import NodeView
from kawa.protocol.tasks import TaskView

REPLAY_EVENTS = 4096
"""Recent events kept for replay to a client that reconnects (``?after=SEQ``)."""


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
    (its stream ends, and the client re-reads state when it reconnects). The last
    ``replay_size`` events are kept for subscribers that resume after a sequence number."""

    def __init__(self, queue_size: int = 10_000, replay_size: int = REPLAY_EVENTS) -> None:
        if not 0 < replay_size < queue_size:
            raise ValueError("the replay ring must be smaller than a subscriber's queue")
        self._subs: set[Subscription] = set()
        start = time.time_ns() // 1000
        self._seq = itertools.count(start)
        self.current = start - 1
        """The last sequence number published (one below the first before any)."""
        self._recent: deque[Event] = deque(maxlen=replay_size)
        self._size = queue_size
        self._lock = threading.Lock()
        self._outbox: deque[tuple[Event, bool]] = deque()
        """Events published and not yet delivered, oldest first, each with whether it
        was relayed from another host."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flush_scheduled = False
        self.on_own: Callable[[Event], None] | None = None
        """Called on the loop with each event of a change made by this process (not with
        those relayed from another host): how hosts sharing a database tell each other."""

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Serve subscribers on ``loop`` (the one the host's server runs)."""
        self._loop = loop

    def publish_task(self, task: TaskView, relayed: bool = False) -> None:
        """Publish ``task``'s new view; ``relayed``: the change was another host's."""
        with self._lock:
            self._outbox.append((Event(seq=next(self._seq), type="task", task=task), relayed))
        self._kick()

    def publish_node(self, node: NodeView, relayed: bool = False) -> None:
        """Publish ``node``'s new view; ``relayed``: the change was another host's."""
        with self._lock:
            self._outbox.append((Event(seq=next(self._seq), type="node", node=node), relayed))
        self._kick()

    def _kick(self) -> None:
        """Deliver the outbox now on the loop, else have the loop deliver it soon."""
        with self._lock:
            here = self._on_loop()
            loop = self._loop
            schedule = not here and loop is not None and not self._flush_scheduled
            if schedule:
                self._flush_scheduled = True
        if here:
            self._flush()
        elif schedule and loop is not None:
            try:
                loop.call_soon_threadsafe(self._flush)
            except RuntimeError:  # the loop is closed: the host is stopping, nobody listens
                with self._lock:
                    self._outbox.clear()
                    self._flush_scheduled = False

    def _on_loop(self) -> bool:
        """True on the loop's thread, or where no loop serves subscribers at all."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None and (self._loop is None or self._loop.is_closed()):
            self._loop = running
        if self._loop is None or self._loop.is_closed():
            return True
        return running is self._loop

    def _flush(self) -> None:
        with self._lock:
            events = list(self._outbox)
            self._outbox.clear()
            self._flush_scheduled = False
        for event, relayed in events:
            self._fan_out(event)
            if not relayed and self.on_own is not None:
                self.on_own(event)

    def _fan_out(self, event: Event) -> None:
        self.current = event.seq
        self._recent.append(event)
        for sub in list(self._subs):
            self._offer(sub, event)

    def _offer(self, sub: Subscription, event: Event) -> None:
        if sub.overflowed:
            return
        if sub.queue.qsize() >= self._size - 1:
            sub.overflowed = True
            sub.queue.put_nowait(None)
        else:
            sub.queue.put_nowait(event)

    def replay(self, after: int) -> list[Event] | None:
        """The kept events after ``after``, oldest first; None when some of them are no
        longer kept (or ``after`` is not a number this process has reached)."""
        first = self._recent[0].seq if self._recent else self.current + 1
        if after > self.current or after + 1 < first:
            return None
        return [e for e in self._recent if e.seq > after]

    @contextmanager
    def subscribe(self, after: int | None = None) -> Iterator[Subscription]:
        """A subscription to events from now on; with ``after``, the kept events after
        it come first, or (when they are not all kept) one ``reset`` event."""
        self._on_loop()  # binds the loop when none is bound yet
        self._flush()  # what was published before now is not replayed as new
        sub = Subscription(self._size)
        if after is not None:
            backlog = self.replay(after)
            if backlog is None:
                backlog = [Event(seq=self.current, type="reset")]
            for event in backlog:  # fewer than the queue holds: never cut off here
                sub.queue.put_nowait(event)
        self._subs.add(sub)
        try:
            yield sub
        finally:
            self._subs.discard(sub)

    def forget(self) -> None:
        """End every subscription and keep no event for replay: events may have been
        missed, so subscribers must re-read (a resume gets ``reset``)."""
        self._recent.clear()
        for sub in list(self._subs):
            if not sub.overflowed:
                sub.overflowed = True
                sub.queue.put_nowait(None)

    def close(self) -> None:
        for sub in self._subs:
            sub.queue.put_nowait(None)
