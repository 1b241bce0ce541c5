"""Runner registration, heartbeats, liveness and draining. Every method that reads or
writes the database is called in a worker thread (routes run in FastAPI's threadpool,
the liveness check in ``asyncio.to_thread``); only :meth:`resend` runs on the loop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from kawa.core.reconcile import Memory, Reconciliation, TaskOnNode, is_silent, reconcile
from kawa.core.reports import ObservedState, observed_state
from kawa.core.task_states import Action, Desired, TaskEvent, TaskKind, TaskState
from kawa.host.actions import ActionRunner
from kawa.host.answer_cache import AnswerCache
from kawa.host.audit import record
from kawa.host.auth import Principal
from kawa.host.errors import Conflict, NotFound
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
        self._history: dict[str, deque[NodeUsageSample]] = {}
        self.histories = NodeHistories(heartbeat_interval)
        """Each node's measurements for graphs (an hour per heartbeat, a day per minute)."""
        self.listing = NodeListing()
        self.pages = AnswerCache.of_database(
            ledger.sessions, ("nodes", "tasks"), quiet_for=QUIET_FOR
        )
        """Node list answers, reused while no node or task was written (heartbeats that
        only refresh usage: for up to :data:`QUIET_FOR` seconds)."""
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

    def begin_leading(self) -> None:
        """Start afresh as the leader: what this process remembered of tasks and
        liveness is dropped, and the tasks ``assigning`` now count as orphaned (their
        dispatch was an earlier leader's). Nodes get ``node_timeout`` from now to reach
        this host before any is called offline."""
        self._started = datetime.now(UTC)
        self._orphaned = self._assigning_now()
        self._missing_since.clear()

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
        now = datetime.now(UTC)
        came_back = False
        todo: list[Resend] = []
        observed = {o.task_id: observed_state(o.state) for o in hb.tasks}
        with self.ledger.change() as change:
            s = change.session
            node = s.get(Node, hb.name)
            if node is None:
                raise NotFound(f"node {hb.name} is not registered")
            came_back = node.status == NodeStatus.OFFLINE.value
            node.status = NodeStatus.ONLINE.value
            node.last_heartbeat = now
            node.usage = hb.usage.model_dump(mode="json")
            memory = int(node.inventory.get("memory", 0))
            if hb.inventory is not None:
                node.inventory = hb.inventory.model_dump(mode="json")
            for held in _held_on(s, hb.name):
                done = self._reconcile(change, held, observed.get(str(held.id)), now)
                todo.extend((action, node.url, held.id) for action in done.actions)
        self._history.setdefault(hb.name, deque(maxlen=self._history_len)).append(hb.usage)
        self.histories.add(hb.name, point_of(hb.usage, time.time(), memory))
        if came_back:
            self._publish(hb.name)
            self.ledger.on_release()
        return todo

    def resend(self, todo: list[Resend]) -> None:
        """Carry out, on the running loop, what a heartbeat showed must be sent again."""
        loop = asyncio.get_running_loop()
        for action, url, task_id in todo:
            task = loop.create_task(self._carry_out(action, url, task_id))
            self._resending.add(task)
            task.add_done_callback(self._resending.discard)

    def _reconcile(
        self, change: Change, held: TaskOnNode, seen: ObservedState | None, now: datetime
    ) -> Reconciliation:
        """Apply what the runner's listing of task ``held`` means (:func:`reconcile`) and
        remember what the next heartbeat needs. The task's entity is loaded only when a
        transition is due (a heartbeat that changes nothing reads no entity)."""
        memory = Memory(
            orphaned=held.id in self._orphaned,
            dispatching=held.id in self.dispatching,
            missing_since=self._missing_since.get(held.id),
        )
        done = reconcile(held, seen, memory, now.timestamp(), self.node_timeout)
        task = change.session.get(Task, held.id) if done.steps else None
        for step in done.steps:
            if task is not None and change.try_apply(task, step.event, step.cause) and step.error:
                task.error = step.error
        if not done.memory.orphaned:
            self._orphaned.discard(held.id)
        if done.memory.missing_since is None:
            self._missing_since.pop(held.id, None)
        else:
            self._missing_since[held.id] = done.memory.missing_since
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
                seen = None if last is None else aware(last).timestamp()
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
            if is_silent(
                None if last is None else aware(last).timestamp(), now, self.node_timeout, started
            )
        ]

    async def monitor(self) -> None:
        """Check liveness every ``node_timeout / 20`` s (0.5 s by default, at most 1 s),
        so a silent node is offline at most that much later than its timeout."""
        interval = min(1.0, max(0.05, self.node_timeout / 20))
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(self.mark_offline)
            except Exception:
                log.exception("liveness check failed")

    # -- user side ------------------------------------------------------------------
    def list(self) -> list[NodeView]:
        with self.ledger.sessions() as s:
            held = holding_by_node(s)
            return [
                node_view(n, held.get(n.name, []))
                for n in s.scalars(select(Node).order_by(Node.name))
            ]

    def page(self) -> bytes:
        """What :meth:`list` answers, as JSON (each node's part reused while unchanged).
        Blocks."""

        def read() -> bytes:
            with self.ledger.sessions() as s:
                return self.listing.page(s)

        return self.pages.answer("all", read)

    def known_page(self) -> bytes | None:
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
        return NodeHealth(node=self.get(name), history=list(self._history.get(name, ())))

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
        log.info("node %s removed", name)

    def _publish(self, name: str) -> NodeView:
        view = self.get(name)
        self.bus.publish_node(view)
        return view


def _held_on(s: Session, node: str) -> list[TaskOnNode]:
    """The tasks the host has on ``node`` (there, or lost there), as plain rows."""
    query = select(Task.id, Task.kind, Task.state, Task.started_at, Task.desired).where(
        Task.node == node, Task.state.in_([*_ON_NODE, TaskState.LOST.value])
    )
    return [
        TaskOnNode(
            id=task_id,
            kind=TaskKind(kind),
            state=TaskState(state),
            started=started_at is not None,
            desired=Desired(desired),
            node=node,
        )
        for task_id, kind, state, started_at, desired in s.execute(query)
    ]
