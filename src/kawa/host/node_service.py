"""Runner registration, heartbeats, liveness and draining. Every method that reads or
writes the database is called in a worker thread (routes run in FastAPI's threadpool,
the liveness check in ``asyncio.to_thread``); only :meth:`resend` runs on the loop."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from sqlalchemy import String, cast, select, update
from sqlalchemy.orm import Session

from kawa.core.reconcile import Memory, Reconciliation, TaskOnNode, is_silent, reconcile
from kawa.core.reports import ObservedState, observed_state
from kawa.core.task_states import Action, Desired, TaskEvent, TaskKind, TaskState
from kawa.host.actions import ActionRunner
from kawa.host.answer_cache import AnswerCache
from kawa.host.audit import record
from kawa.host.auth import Principal
from kawa.host.batches import Batches
from kawa.host.encoded_answer import EncodedAnswer
from kawa.host.errors import Conflict, NotFound, Unavailable
from kawa.host.events import EventBus
from kawa.host.ledger import Change, Ledger
from kawa.host.node_history import NodeHistories, point_of
from kawa.host.node_listing import NodeListing
from kawa.host.runner_link import RunnerLink
from kawa.host.snapshots import holding_by_node, holding_on
from kawa.host.views import aware, node_view
from kawa.protocol.history import HistoryWindow, NodeHistory
from kawa.protocol.join import PROTOCOL_VERSION
from kawa.protocol.nodes import (
    Heartbeat,
    NodeHealth,
    NodeRegistration,
    NodeStatus,
    NodeUsageSample,
    NodeView,
    RegistrationAccepted,
)
from kawa.store.models import Node, Task

log = logging.getLogger(__name__)
QUIET_FOR = 1.0
"""Seconds the node list may lag behind heartbeats that changed only usage and time
(a usage sample is itself up to a heartbeat interval old)."""
Resend = tuple[Action, str, int]
"""An action to send again, the runner's URL and the task's id."""
_ON_NODE = [TaskState.ASSIGNING.value, TaskState.RUNNING.value, TaskState.PAUSED.value]
HEARTBEAT_GROUP = 100
"""At most this many heartbeats are recorded in one transaction."""
HEARTBEAT_LINGER = 0.05
"""Seconds a heartbeat waits for others to be recorded with it. Runners' heartbeats come
spread out in time: recorded as they come, 500 nodes made about 60 transactions a
second of one to three heartbeats each, which held the write lock most of the time."""


class NodeService:
    def __init__(
        self,
        ledger: Ledger,
        bus: EventBus,
        link: RunnerLink,
        cluster_id: str,
        heartbeat_interval: float,
        node_timeout: float,
        history_seconds: float = 600.0,
    ) -> None:
        self.ledger = ledger
        self.bus = bus
        self.link = link
        self.actions = ActionRunner(ledger, link)
        self.cluster_id = cluster_id
        self.heartbeat_interval = heartbeat_interval
        self.node_timeout = node_timeout
        self._history_len = max(1, int(history_seconds / heartbeat_interval))
        self._history: dict[str, deque[str]] = {}
        """Each node's recent samples as JSON: text is not tracked by the garbage
        collector, as many thousand sample objects would be in each of its full passes."""
        self.histories = NodeHistories(heartbeat_interval)
        """Each node's measurements for graphs (an hour per heartbeat, a day per minute)."""
        self.listing = NodeListing()
        self.pages: AnswerCache[EncodedAnswer] = AnswerCache.of_database(
            ledger.sessions, ("nodes", "tasks"), quiet_for=QUIET_FOR
        )
        """Node list answers (with their gzip copies), reused while no node or task was
        written (heartbeats that only refresh usage: for up to :data:`QUIET_FOR` s)."""
        self._resending: set[asyncio.Task[None]] = set()
        self._missing_since: dict[int, float] = {}
        """Task id -> since when its runner has not listed it (while that matters)."""
        self.dispatching: set[int] = set()
        """Ids of tasks whose order the scheduler is sending now (its own set)."""
        self._started = datetime.now(UTC)
        """No node counts as silent for longer than this process has been listening."""
        self._orphaned = self._assigning_now()
        """Tasks found ``assigning`` at start: their dispatch died with an earlier host
        process, so only their runner's next heartbeat can say whether it got them."""
        self._beats: Batches[Heartbeat, list[Resend]] = Batches(
            self.heartbeats, HEARTBEAT_GROUP, HEARTBEAT_LINGER
        )
        """Heartbeats waiting to be recorded together (:meth:`beat`)."""
        self.leading = True
        """False once this process stopped leading: a heartbeat's write waiting its turn
        then is refused (503, as the route answers a host standing by), not made."""
        self._heard: dict[str, float] = {}
        """Node -> when its last heartbeat reached this process (its row may not say so
        yet: the write waits its turn behind others). A node heard is not silent."""

    def begin_leading(self) -> None:
        """Start afresh as the leader: what this process remembered of tasks and
        liveness is dropped, and the tasks ``assigning`` now count as orphaned (their
        dispatch was an earlier leader's). Nodes get ``node_timeout`` from now to reach
        this host before any is called offline."""
        self._started = datetime.now(UTC)
        self._orphaned = self._assigning_now()
        self._missing_since.clear()
        self.leading = True
        self._heard.clear()

    def _assigning_now(self) -> set[int]:
        with self.ledger.sessions() as s:
            query = select(Task.id).where(Task.state == TaskState.ASSIGNING.value)
            return set(s.scalars(query))

    # -- runner side ----------------------------------------------------------------
    def check_registration(self, reg: NodeRegistration) -> None:
        """Conflict when the runner speaks another protocol, or when a node of that name
        is online at another address (two machines under one name)."""
        if reg.protocol_version is not None and reg.protocol_version != PROTOCOL_VERSION:
            raise Conflict(
                f"protocol mismatch: this host speaks Kawa protocol {PROTOCOL_VERSION}, "
                f"runner {reg.name} {reg.protocol_version}: install the same Kawa release on both"
            )
        url = reg.url.rstrip("/")
        cutoff = datetime.now(UTC) - timedelta(seconds=self.node_timeout)
        with self.ledger.sessions() as s:
            node = s.get(Node, reg.name)
            if (
                node is not None
                and node.url != url
                and node.status == NodeStatus.ONLINE.value
                and node.last_heartbeat is not None
                and aware(node.last_heartbeat) >= cutoff
            ):
                raise Conflict(
                    f"node {reg.name} is already online at {node.url}: choose another name "
                    f"(--name) or stop that runner first (it counts as gone "
                    f"{self.node_timeout:g}s after its last heartbeat)"
                )

    def register(self, reg: NodeRegistration) -> RegistrationAccepted:
        now = datetime.now(UTC)
        with self.ledger.writing() as s:
            node = s.get(Node, reg.name)
            if node is None:
                node = Node(name=reg.name, registered_at=now, draining=False)
                s.add(node)
            node.url = reg.url.rstrip("/")
            node.inventory = reg.inventory.model_dump(mode="json")
            node.status = NodeStatus.ONLINE.value
            node.last_heartbeat = now
        log.info("runner %s registered at %s", reg.name, reg.url)
        self._publish(reg.name)
        self.ledger.on_release()
        return RegistrationAccepted(
            cluster_id=self.cluster_id, heartbeat_interval=self.heartbeat_interval
        )

    def heartbeat(self, hb: Heartbeat) -> list[Resend]:
        """Record a heartbeat; what it shows must be sent again is returned for
        :meth:`resend`."""
        (done,) = self.heartbeats([hb])
        if isinstance(done, Exception):
            raise done
        return done

    async def beat(self, hb: Heartbeat) -> None:
        """Record a heartbeat with those that arrive meanwhile (:meth:`heartbeats`, one
        transaction for the group) and send again what it shows must be. The node
        counts as heard from now on. The answer waits for the write at most a heartbeat
        interval: a write that waits its turn longer (behind a large submission) is
        still made, later, and the runner's next heartbeat comes on time."""
        self._heard[hb.name] = time.time()
        recording = asyncio.ensure_future(self._beats.submit(hb))
        await asyncio.wait([recording], timeout=self.heartbeat_interval)
        if recording.done():
            self.resend(recording.result())
        else:
            recording.add_done_callback(self._recorded_late)

    def _recorded_late(self, recording: asyncio.Future[list[Resend]]) -> None:
        if recording.cancelled():
            return
        failure = recording.exception()
        if failure is not None:
            log.warning("a heartbeat answered before its write could not be recorded: %s", failure)
            return
        self.resend(recording.result())

    def heartbeats(self, beats: list[Heartbeat]) -> list[list[Resend] | Exception]:
        """Record heartbeats in one transaction: each node's row as one heartbeat writes
        it, and its tasks reconciled with its listing (a task entity is loaded only when
        its listing calls for a transition). For each heartbeat in order, what must be
        sent again (for :meth:`resend`), or NotFound for a node not registered (the
        others are recorded all the same)."""
        if not self.leading:
            raise Unavailable("this host is standing by; another host leads the cluster")
        now = datetime.now(UTC)
        answers: list[list[Resend] | Exception] = []
        memory = _Remembered(self)
        recorded: list[tuple[Heartbeat, int]] = []
        came_back: list[str] = []
        with self.ledger.change() as change:
            s = change.session
            names = list(dict.fromkeys(hb.name for hb in beats))
            nodes = {
                name: [status, url, stored]
                for name, status, url, stored in s.execute(
                    select(Node.name, Node.status, Node.url, cast(Node.inventory, String)).where(
                        Node.name.in_(names)
                    )
                )
            }
            held = _held_by_node(s, [n for n in names if n in nodes])
            rows: list[dict[str, object]] = []
            seen: set[str] = set()
            for hb in beats:
                node = nodes.get(hb.name)
                if node is None:
                    answers.append(NotFound(f"node {hb.name} is not registered"))
                    continue
                status, url, stored = node
                if status == NodeStatus.OFFLINE.value:
                    came_back.append(hb.name)
                node[0] = NodeStatus.ONLINE.value
                row: dict[str, object] = {
                    "name": hb.name,
                    "last_heartbeat": now,
                    "usage": hb.usage.model_dump(mode="json"),
                }
                if status != NodeStatus.ONLINE.value:  # written only when it changes: a
                    row["status"] = NodeStatus.ONLINE.value  # usage-only write is quiet
                if hb.inventory is not None:
                    row["inventory"] = hb.inventory.model_dump(mode="json")
                rows.append(row)
                recorded.append((hb, _memory_of(stored)))
                if hb.name in seen:  # twice in one group: read what the first one left
                    s.flush()
                    tasks = _held_on(s, hb.name)
                else:
                    tasks = held.get(hb.name, [])
                seen.add(hb.name)
                observed = {o.task_id: observed_state(o.state) for o in hb.tasks}
                todo: list[Resend] = []
                for task in tasks:
                    done = self._reconcile(change, task, observed.get(str(task.id)), now, memory)
                    todo.extend((action, url, task.id) for action in done.actions)
                answers.append(todo)
            for keys in {tuple(sorted(r)) for r in rows}:  # one statement per set of columns
                s.execute(update(Node), [r for r in rows if tuple(sorted(r)) == keys])
        memory.keep()
        stamp = time.time()
        for hb, node_memory in recorded:
            self._history.setdefault(hb.name, deque(maxlen=self._history_len)).append(
                hb.usage.model_dump_json()
            )
            self.histories.add(hb.name, point_of(hb.usage, stamp, node_memory))
        for name in dict.fromkeys(came_back):
            self._publish(name)
        if came_back:
            self.ledger.on_release()
        return answers

    def resend(self, todo: list[Resend]) -> None:
        """Carry out, on the running loop, what a heartbeat showed must be sent again."""
        loop = asyncio.get_running_loop()
        for action, url, task_id in todo:
            task = loop.create_task(self._carry_out(action, url, task_id))
            self._resending.add(task)
            task.add_done_callback(self._resending.discard)

    def _reconcile(
        self,
        change: Change,
        held: TaskOnNode,
        seen: ObservedState | None,
        now: datetime,
        memory: _Remembered,
    ) -> Reconciliation:
        """Apply what the runner's listing of task ``held`` means (:func:`reconcile`) and
        note in ``memory`` what the next heartbeat needs. The task's entity is loaded only
        when a transition is due (a heartbeat that changes nothing reads no entity)."""
        done = reconcile(held, seen, memory.of(held.id), now.timestamp(), self.node_timeout)
        task = change.session.get(Task, held.id) if done.steps else None
        for step in done.steps:
            if task is not None and change.try_apply(task, step.event, step.cause) and step.error:
                task.error = step.error
        memory.note(held.id, done.memory)
        return done

    async def _carry_out(self, action: Action, url: str, task_id: int) -> None:
        try:
            await self.actions.carry_out(action, task_id, url)
        except Conflict as exc:
            log.warning("re-sent %s of %s failed: %s", action.value, task_id, exc)

    # -- liveness -------------------------------------------------------------------
    def mark_offline(self) -> list[str]:
        """Nodes silent for longer than ``node_timeout`` go offline; their tasks are lost."""
        now = datetime.now(UTC).timestamp()
        gone: list[str] = []
        if not is_silent(None, now, self.node_timeout, self._started.timestamp()):
            return gone  # runners had no time yet to reach this process
        silent = self._silent(now)
        if not silent:
            return gone  # no write transaction: most checks find every node alive
        with self.ledger.change() as change:
            s = change.session
            online = Node.status == NodeStatus.ONLINE.value
            for node in s.scalars(select(Node).where(online, Node.name.in_(silent))):
                last = node.last_heartbeat
                seen = self._last_heard(node.name, last)
                if not is_silent(seen, now, self.node_timeout, self._started.timestamp()):
                    continue
                node.status = NodeStatus.OFFLINE.value
                gone.append(node.name)
                for task in s.scalars(
                    select(Task).where(Task.node == node.name, Task.state.in_(_ON_NODE))
                ):
                    change.apply(
                        task,
                        TaskEvent.RUNNER_LOST,
                        f"runner {node.name} missed heartbeats for {self.node_timeout:g}s",
                    )
        for name in gone:
            log.warning("node %s is offline", name)
            self._publish(name)
        return gone

    def _silent(self, now: float) -> list[str]:
        """The online nodes silent for longer than ``node_timeout`` (read, not locked:
        :meth:`mark_offline` checks each again in its transaction)."""
        with self.ledger.sessions() as s:
            rows = s.execute(
                select(Node.name, Node.last_heartbeat).where(Node.status == NodeStatus.ONLINE.value)
            ).all()
        started = self._started.timestamp()
        return [
            name
            for name, last in rows
            if is_silent(self._last_heard(name, last), now, self.node_timeout, started)
        ]

    def _last_heard(self, name: str, stored: datetime | None) -> float | None:
        """When node ``name`` was last heard from: its stored last heartbeat, or the
        arrival of one not recorded yet."""
        heard = self._heard.get(name)
        seen = None if stored is None else aware(stored).timestamp()
        if heard is None or (seen is not None and seen >= heard):
            return seen
        return heard

    async def monitor(self) -> None:
        """Check liveness every ``node_timeout / 20`` s (0.5 s by default, at most 1 s),
        so a silent node is offline at most that much later than its timeout. Runs while
        this process leads: once it ends, heartbeats still waiting for their write are
        refused instead (:attr:`leading`)."""
        interval = min(1.0, max(0.05, self.node_timeout / 20))
        self.leading = True
        try:
            while True:
                await asyncio.sleep(interval)
                try:
                    await asyncio.to_thread(self.mark_offline)
                except Exception:
                    log.exception("liveness check failed")
        finally:
            self.leading = False

    # -- user side ------------------------------------------------------------------
    def list(self) -> list[NodeView]:
        with self.ledger.sessions() as s:
            held = holding_by_node(s)
            return [
                node_view(n, held.get(n.name, []))
                for n in s.scalars(select(Node).order_by(Node.name))
            ]

    def page(self) -> EncodedAnswer:
        """What :meth:`list` answers, as JSON (each node's part reused while unchanged).
        Blocks."""

        def read() -> EncodedAnswer:
            with self.ledger.sessions() as s:
                return EncodedAnswer.of(self.listing.page(s))

        return self.pages.answer("all", read)

    def known_page(self) -> EncodedAnswer | None:
        """:meth:`page`'s answer when it is kept and current, else None (reads nothing)."""
        return self.pages.known("all")

    def get(self, name: str) -> NodeView:
        with self.ledger.sessions() as s:
            node = s.get(Node, name)
            if node is None:
                known = ", ".join(s.scalars(select(Node.name))) or "none"
                raise NotFound(f"unknown node {name!r}; known nodes: {known}")
            return node_view(node, holding_on(s, name))

    def health(self, name: str) -> NodeHealth:
        samples = [NodeUsageSample.model_validate_json(b) for b in self._history.get(name, ())]
        return NodeHealth(node=self.get(name), history=samples)

    def history(self, name: str, window: HistoryWindow) -> NodeHistory:
        """The node's measurements over ``window``; 404 for a node never registered."""
        with self.ledger.sessions() as s:
            if s.get(Node, name) is None:
                known = ", ".join(s.scalars(select(Node.name))) or "none"
                raise NotFound(f"unknown node {name!r}; known nodes: {known}")
        return self.histories.window(name, window)

    def set_draining(self, name: str, draining: bool, who: Principal) -> NodeView:
        with self.ledger.writing() as s:
            node = s.get(Node, name)
            if node is None:
                raise NotFound(f"unknown node {name!r}")
            node.draining = draining
            record(s, who, "node.drain" if draining else "node.undrain", name)
        if not draining:
            self.ledger.on_release()
        return self._publish(name)

    def urls(self) -> set[str]:
        """The addresses of every registered node."""
        with self.ledger.sessions() as s:
            return set(s.scalars(select(Node.url)))

    def remove(self, name: str, force: bool, who: Principal) -> None:
        """Forget node ``name``: it must be offline or draining, with nothing on it,
        unless ``force`` (then its tasks are lost). Its tasks keep their history under
        its name, and a runner that joins again under that name finds it."""
        with self.ledger.change() as change:
            s = change.session
            node = s.get(Node, name)
            if node is None:
                raise NotFound(f"unknown node {name!r}")
            active = list(
                s.scalars(select(Task).where(Task.node == name, Task.state.in_(_ON_NODE)))
            )
            if not force:
                if node.status == NodeStatus.ONLINE.value and not node.draining:
                    raise Conflict(
                        f"node {name} is online and not draining: drain it first "
                        f"(kawa node drain {name}) or use --force"
                    )
                if active:
                    ids = ", ".join(str(t.id) for t in active[:5])
                    raise Conflict(
                        f"node {name} still has {len(active)} task(s) ({ids}): wait for them, "
                        "kill them, or use --force (they become lost)"
                    )
            for task in active:
                change.apply(task, TaskEvent.RUNNER_LOST, f"node {name} was removed by {who.user}")
            s.delete(node)
            record(s, who, "node.remove", name, "forced" if force else "")
        self._history.pop(name, None)
        self._heard.pop(name, None)
        log.info("node %s removed", name)

    def _publish(self, name: str) -> NodeView:
        view = self.get(name)
        self.bus.publish_node(view)
        return view


def _held_on(s: Session, node: str) -> list[TaskOnNode]:
    """The tasks the host has on ``node`` (there, or lost there), as plain rows."""
    return _held_by_node(s, [node]).get(node, [])


def _held_by_node(s: Session, nodes: list[str]) -> dict[str, list[TaskOnNode]]:
    """What the host has on each of ``nodes`` (there, or lost there), in one query."""
    held: dict[str, list[TaskOnNode]] = {}
    if not nodes:
        return held
    where = Task.node == nodes[0] if len(nodes) == 1 else Task.node.in_(nodes)
    query = select(Task.id, Task.node, Task.kind, Task.state, Task.started_at, Task.desired).where(
        where, Task.state.in_([*_ON_NODE, TaskState.LOST.value])
    )
    for task_id, node, kind, state, started_at, desired in s.execute(query):
        assert node is not None  # selected so
        held.setdefault(node, []).append(
            TaskOnNode(
                id=task_id,
                kind=TaskKind(kind),
                state=TaskState(state),
                started=started_at is not None,
                desired=Desired(desired),
                node=node,
            )
        )
    return held


@lru_cache(maxsize=4096)
def _memory_of(stored: str) -> int:
    """The memory of a node whose inventory is stored as the JSON text ``stored``."""
    return int(json.loads(stored).get("memory", 0))


class _Remembered:
    """What heartbeats of one transaction leave to remember of tasks: read through to
    the service's memory, kept there only once the transaction has committed."""

    def __init__(self, service: NodeService) -> None:
        self._service = service
        self._notes: dict[int, Memory] = {}

    def of(self, task_id: int) -> Memory:
        noted = self._notes.get(task_id)
        if noted is not None:
            return Memory(noted.orphaned, task_id in self._service.dispatching, noted.missing_since)
        service = self._service
        return Memory(
            orphaned=task_id in service._orphaned,
            dispatching=task_id in service.dispatching,
            missing_since=service._missing_since.get(task_id),
        )

    def note(self, task_id: int, memory: Memory) -> None:
        self._notes[task_id] = memory

    def keep(self) -> None:
        service = self._service
        for task_id, memory in self._notes.items():
            if not memory.orphaned:
                service._orphaned.discard(task_id)
            if memory.missing_since is None:
                service._missing_since.pop(task_id, None)
            else:
                service._missing_since[task_id] = memory.missing_since
