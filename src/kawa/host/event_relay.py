"""Events between hosts sharing one PostgreSQL database, by LISTEN/NOTIFY.

Each host sends the ids of the tasks and nodes it changed (after the change is
committed) on one channel; every other host reads their views from the database and
publishes them to its own subscribers. A subscriber of any host thus sees every
host's changes, each as the state it has when read (several quick changes of one
task may come as its latest view only). While the listening connection is down,
changes are missed: when it is back, every subscription is ended (clients reconnect and
re-read, as when the host cuts a slow subscriber) and no earlier event is replayed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg

from kawa.host.events import EventBus
from kawa.protocol.events import Event
from kawa.protocol.nodes import NodeView
from kawa.protocol.tasks import TaskView
from kawa.store.advisory_lock import libpq_url

log = logging.getLogger(__name__)
V = TypeVar("V")

CHANNEL = "kawa_events"
PAYLOAD_LIMIT = 7000
"""Bytes of ids per notification (PostgreSQL takes payloads under 8000 bytes)."""


@dataclass
class Changed:
    """Ids of changed tasks and nodes, as one notification carries them."""

    origin: str
    tasks: list[str] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)

    def payload(self) -> str:
        data = {"o": self.origin, "t": self.tasks, "n": self.nodes}
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def parse(cls, payload: str) -> Changed | None:
        """The notification's ids; None for a payload this relay did not send."""
        try:
            data = json.loads(payload)
            return cls(str(data["o"]), [str(t) for t in data["t"]], [str(n) for n in data["n"]])
        except (ValueError, KeyError, TypeError):
            return None


def payloads(origin: str, events: list[Event]) -> list[str]:
    """The notifications that name each task and node of ``events`` once, each payload
    under :data:`PAYLOAD_LIMIT` bytes."""
    tasks = list(dict.fromkeys(e.task.id for e in events if e.task is not None))
    nodes = list(dict.fromkeys(e.node.name for e in events if e.node is not None))
    out: list[str] = []
    batch = Changed(origin)
    size = len(batch.payload())
    for kind, ids in (("t", tasks), ("n", nodes)):
        for item in ids:
            cost = len(json.dumps(item)) + 1
            if size + cost > PAYLOAD_LIMIT and (batch.tasks or batch.nodes):
                out.append(batch.payload())
                batch, size = Changed(origin), len(Changed(origin).payload())
            (batch.tasks if kind == "t" else batch.nodes).append(item)
            size += cost
    if batch.tasks or batch.nodes:
        out.append(batch.payload())
    return out


class EventRelay:
    """Sends this host's events to the other hosts, and publishes theirs here."""

    def __init__(
        self,
        url: str,
        bus: EventBus,
        read_task: Callable[[str], TaskView | None],
        read_node: Callable[[str], NodeView | None],
        retry: float = 1.0,
        on_tasks: Callable[[], None] = lambda: None,
        on_nodes: Callable[[], None] = lambda: None,
    ) -> None:
        self.url = libpq_url(url)
        self.on_tasks = on_tasks
        """Called after tasks changed by another host are published (wakes the scheduler:
        a task submitted to a standby is placed by the leader at once)."""
        self.on_nodes = on_nodes
        """Called when another host changed nodes, before they are read here."""
        self.bus = bus
        self.read_task = read_task
        self.read_node = read_node
        self.retry = retry
        self.origin = uuid.uuid4().hex
        self.listening = asyncio.Event()
        """Set while notifications from other hosts are being received."""
        self._outbox: list[Event] = []
        self._pending = asyncio.Event()
        bus.on_own = self._queue

    def _queue(self, event: Event) -> None:
        self._outbox.append(event)
        self._pending.set()

    async def run(self) -> None:
        """Send and receive until cancelled (reconnecting after a broken connection)."""
        try:
            await asyncio.gather(self._send_loop(), self._listen_loop())
        finally:
            self.bus.on_own = None

    async def _connect(self, purpose: str) -> psycopg.AsyncConnection[Any]:
        """A connection for ``purpose`` (send or listen), retried until one is made."""
        while True:
            try:
                return await psycopg.AsyncConnection.connect(self.url, autocommit=True)
            except (psycopg.Error, OSError) as exc:
                log.warning("event relay cannot connect to %s: %s", purpose, exc)
                await asyncio.sleep(self.retry)

    async def _send_loop(self) -> None:
        while True:
            conn = await self._connect("send")
            try:
                async with conn:
                    while True:
                        await self._pending.wait()
                        self._pending.clear()
                        events, self._outbox = self._outbox, []
                        for payload in payloads(self.origin, events):
                            await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
            except (psycopg.Error, OSError) as exc:
                log.warning("event relay lost its sending connection: %s", exc)
                await asyncio.sleep(self.retry)

    async def _listen_loop(self) -> None:
        first = True
        while True:
            conn = await self._connect("listen")
            try:
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    if not first:  # changes may have been missed while disconnected
                        self.bus.forget()
                    first = False
                    async for note in conn.notifies():
                        self._received(note.payload)
            except (psycopg.Error, OSError) as exc:
                log.warning("event relay lost its listening connection: %s", exc)
            finally:
                self.listening.clear()
            await asyncio.sleep(self.retry)

    def _received(self, payload: str) -> None:
        changed = Changed.parse(payload)
        if changed is None or changed.origin == self.origin:
            return
        if changed.nodes:
            self.on_nodes()
        for task_id in changed.tasks:
            task = _quietly(self.read_task, task_id)
            if task is not None:
                self.bus.publish_task(task, relayed=True)
        if changed.tasks:
            self.on_tasks()
        for name in changed.nodes:
            node = _quietly(self.read_node, name)
            if node is not None:
                self.bus.publish_node(node, relayed=True)


def _quietly(read: Callable[[str], V | None], key: str) -> V | None:
    """``read(key)``, or None when it is gone or cannot be read now."""
    try:
        return read(key)
    except Exception as exc:  # a task removed since, a database hiccup: not fatal here
        log.debug("event relay could not read %s: %s", key, exc)
        return None
