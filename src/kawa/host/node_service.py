"""Runner registration, heartbeats, liveness and draining."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from kawa.core.task_states import TaskEvent, TaskState
from kawa.host.audit import record
from kawa.host.auth import Principal
from kawa.host.errors import Conflict, NotFound
from kawa.host.events import EventBus
from kawa.host.ledger import Change, Ledger
from kawa.host.runner_link import RunnerLink, RunnerRejected, RunnerUnreachable
from kawa.host.snapshots import holding_by_node
from kawa.host.views import aware, node_view
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
        self.cluster_id = cluster_id
        self.heartbeat_interval = heartbeat_interval
        self.node_timeout = node_timeout
        self._history_len = max(1, int(history_seconds / heartbeat_interval))
        self._history: dict[str, deque[NodeUsageSample]] = {}
        self._missing_since: dict[int, datetime] = {}
        self.dispatching: set[int] = set()
        """Ids of tasks whose order the scheduler is sending now (its own set)."""
        self._started = datetime.now(UTC)
        """No node counts as silent for longer than this process has been listening."""
        self._orphaned = self._assigning_now()
        """Tasks found ``assigning`` at start: their dispatch died with an earlier host
        process, so only their runner's next heartbeat can say whether it got them."""

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
        with self.ledger.sessions.begin() as s:
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

    def heartbeat(self, hb: Heartbeat) -> None:
        now = datetime.now(UTC)
        came_back = False
        resend: list[tuple[str, int]] = []
        observed = {o.task_id: o.state for o in hb.tasks}
        with self.ledger.change() as change:
            s = change.session
            node = s.get(Node, hb.name)
            if node is None:
                raise NotFound(f"node {hb.name} is not registered")
            came_back = node.status == NodeStatus.OFFLINE.value
            node.status = NodeStatus.ONLINE.value
            node.last_heartbeat = now
            node.usage = hb.usage.model_dump(mode="json")
            if hb.inventory is not None:
                node.inventory = hb.inventory.model_dump(mode="json")
            states = [*_ON_NODE, TaskState.LOST.value]
            for task in s.scalars(select(Task).where(Task.node == hb.name, Task.state.in_(states))):
                seen = observed.get(str(task.id))
                if task.state == TaskState.LOST.value and seen in ("running", "paused"):
                    event = TaskEvent.STARTED if seen == "running" else TaskEvent.PAUSED
                    change.try_apply(task, event, f"runner {hb.name} is back and still has it")
                if task.id in self._orphaned:
                    self._settle_orphan(change, task, seen, hb.name)
                if task.desired == "stop" and seen in ("running", "paused"):
                    resend.append((node.url, task.id))
                if task.state == TaskState.ASSIGNING.value or task.started_at is None:
                    self._check_assigning(change, task, seen, now)
                else:
                    self._check_missing(change, task, seen, now)
        self._history.setdefault(hb.name, deque(maxlen=self._history_len)).append(hb.usage)
        if came_back:
            self._publish(hb.name)
            self.ledger.on_release()
        for url, task_id in resend:
            asyncio.get_running_loop().create_task(self._resend_kill(url, task_id))

    def _settle_orphan(self, change: Change, task: Task, seen: str | None, node: str) -> None:
        """An assignment left over from an earlier host process, as its runner now
        tells: running or paused there, or never received (back to ``pending``, to be
        placed again). A task the runner lists as ``exited`` waits for its report."""
        if seen == "exited":
            return
        self._orphaned.discard(task.id)
        if task.state != TaskState.ASSIGNING.value:
            return
        if seen in ("running", "paused"):
            cause = f"runner {node} has it (dispatched before a host restart)"
            change.try_apply(task, TaskEvent.STARTED, cause)
            if seen == "paused":
                change.try_apply(task, TaskEvent.PAUSED, cause)
        elif seen is None:
            change.try_apply(
                task,
                TaskEvent.DISPATCH_FAILED,
                f"runner {node} never received it (its dispatch died with the host)",
            )

    def _check_missing(self, change, task: Task, seen: str | None, now: datetime) -> None:  # type: ignore[no-untyped-def]
        """A running task its runner no longer lists fails after a grace period
        (exits are reported separately and normally arrive first)."""
        if seen is not None or task.state not in (TaskState.RUNNING.value, TaskState.PAUSED.value):
            self._missing_since.pop(task.id, None)
            return
        since = self._missing_since.setdefault(task.id, now)
        if now - since > timedelta(seconds=self.node_timeout):
            self._missing_since.pop(task.id, None)
            if change.try_apply(task, TaskEvent.EXITED_ERROR, "runner no longer knows this task"):
                task.error = "the runner lost track of this task"

    def _check_assigning(self, change, task: Task, seen: str | None, now: datetime) -> None:  # type: ignore[no-untyped-def]
        """A task never started (assigning, or lost so) whose order is no longer being
        sent: running once its runner lists it so; failed when the runner has not listed
        it for ``node_timeout``."""
        if task.id in self.dispatching or seen is not None:
            self._missing_since.pop(task.id, None)
            if task.id not in self.dispatching and seen == "running":
                change.try_apply(task, TaskEvent.STARTED, f"runner {task.node} reports it running")
            return
        since = self._missing_since.setdefault(task.id, now)
        if now - since > timedelta(seconds=self.node_timeout):
            self._missing_since.pop(task.id, None)
            if change.try_apply(task, TaskEvent.ASSIGN_EXPIRED, "its runner does not have it"):
                task.error = (
                    f"not started: runner {task.node} has not had the task for "
                    f"{self.node_timeout:g}s and no order is under way"
                )

    async def _resend_kill(self, url: str, task_id: int) -> None:
        try:
            await self.link.control(url, str(task_id), "kill")
        except (RunnerUnreachable, RunnerRejected) as exc:
            log.warning("re-sent kill of %s failed: %s", task_id, exc)

    # -- liveness -------------------------------------------------------------------
    def mark_offline(self) -> list[str]:
        """Nodes silent for longer than ``node_timeout`` go offline; their tasks are lost."""
        cutoff = datetime.now(UTC) - timedelta(seconds=self.node_timeout)
        gone: list[str] = []
        if self._started >= cutoff:  # runners had no time yet to reach this process
            return gone
        with self.ledger.change() as change:
            s = change.session
            for node in s.scalars(select(Node).where(Node.status == NodeStatus.ONLINE.value)):
                if node.last_heartbeat is not None and aware(node.last_heartbeat) >= cutoff:
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

    async def monitor(self) -> None:
        """Check liveness every ``node_timeout / 20`` s (0.5 s by default, at most 1 s),
        so a silent node is offline at most that much later than its timeout."""
        interval = min(1.0, max(0.05, self.node_timeout / 20))
        while True:
            await asyncio.sleep(interval)
            try:
                self.mark_offline()
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

    def get(self, name: str) -> NodeView:
        with self.ledger.sessions() as s:
            node = s.get(Node, name)
            if node is None:
                known = ", ".join(s.scalars(select(Node.name))) or "none"
                raise NotFound(f"unknown node {name!r}; known nodes: {known}")
            return node_view(node, holding_by_node(s).get(name, []))

    def health(self, name: str) -> NodeHealth:
        return NodeHealth(node=self.get(name), history=list(self._history.get(name, ())))

    def set_draining(self, name: str, draining: bool, who: Principal) -> NodeView:
        with self.ledger.sessions.begin() as s:
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
