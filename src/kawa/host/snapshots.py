"""Read-only scheduler snapshots of the cluster, built from the database.

Stored inventories and held resources are read as plain columns (JSON as its stored
text), not as ORM objects: a submission's admission check and every scheduling pass
read them, and a fleet's inventories seldom change, so each distinct inventory text is
parsed once."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from functools import lru_cache
from typing import Any, TypeAlias

from sqlalchemy import Select, String, and_, cast, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from kawa.core.resources import NodeCapacity, NodeUsage, ResourceRequest
from kawa.core.scheduler import NodeSnapshot, PlacementError, admit
from kawa.core.targets import TargetSpec
from kawa.core.task_states import HOLDS_RESOURCES
from kawa.host.answer_cache import MAX_AGE
from kawa.host.views import capacity_of
from kawa.protocol.nodes import NodeInventory, NodeStatus
from kawa.store.models import Node, Task
from kawa.store.write_versions import write_versions

_HOLDING = [st.value for st in HOLDS_RESOURCES]


def holding_by_node(s: Session) -> dict[str, list[Task]]:
    held: dict[str, list[Task]] = defaultdict(list)
    for task in s.scalars(select(Task).where(Task.state.in_(_HOLDING))):
        if task.node:
            held[task.node].append(task)
    return held


def holding_on(s: Session, node: str) -> list[Task]:
    """The tasks holding resources on ``node``."""
    return list(s.scalars(select(Task).where(Task.node == node, Task.state.in_(_HOLDING))))


@lru_cache(maxsize=4096)
def capacity_from(stored: str) -> NodeCapacity:
    """The capacity of a node whose inventory is stored as the JSON text ``stored``."""
    return capacity_of(NodeInventory.model_validate(json.loads(stored)))


def capacities(s: Session) -> dict[str, NodeCapacity]:
    """Every registered node's capacity (online or not), by name."""
    rows = s.execute(select(Node.name, cast(Node.inventory, String)).order_by(Node.name))
    return {name: capacity_from(stored) for name, stored in rows}


Verdicts = dict[tuple[ResourceRequest, TargetSpec | None], str | None]
"""Admission verdicts (None: admitted, else why not) by request and target."""

MAX_VERDICTS = 1024
"""Verdicts kept at most with one read of the capacities."""


class KeptCapacities:
    """:func:`capacities`, read again only once the nodes table was written since (a
    node registered, changed or removed; a heartbeat's usage does not count). With
    hundreds of nodes, reading them was most of a single submission's work."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.versions = write_versions(sessions)
        self._kept: tuple[tuple[int, ...], dict[str, NodeCapacity], Verdicts] | None = None
        self._read_at = 0.0

    def get(self, s: Session) -> dict[str, NodeCapacity]:
        """Every node's capacity as ``s`` would read it (not to be changed). Kept at most
        :data:`MAX_AGE` seconds: what this process did not see written (another host's
        change whose notice was lost, a hand edit) shows within that time."""
        version = self.versions.of("nodes")  # noted before reading: never newer
        kept = self._kept
        if kept is not None and kept[0] == version and time.monotonic() - self._read_at < MAX_AGE:
            return kept[1]
        self._read_at = time.monotonic()
        fresh = capacities(s)
        self._kept = (version, fresh, {})
        return fresh

    def admit(
        self, request: ResourceRequest, target: TargetSpec | None, nodes: dict[str, NodeCapacity]
    ) -> None:
        """:func:`kawa.core.scheduler.admit` on ``nodes``; the verdict on like requests
        is kept with the capacities it was made on (``nodes`` as :meth:`get` gave it)."""
        kept = self._kept
        if kept is None or kept[1] is not nodes:
            admit(request, target, nodes)
            return
        verdicts = kept[2]
        key = (request, target)
        if key not in verdicts:
            try:
                admit(request, target, nodes)
                verdicts[key] = None
            except PlacementError as exc:
                verdicts[key] = str(exc)
            if len(verdicts) > MAX_VERDICTS:  # bounded: distinct requests are few
                verdicts.clear()
        problem = verdicts.get(key)
        if problem is not None:
            raise PlacementError(problem)


def _ints(stored: str | None) -> tuple[int, ...]:
    """A stored JSON list of integers (GPU ids, a cpuset): mostly empty."""
    if not stored or stored == "[]":
        return ()
    return tuple(json.loads(stored))


Statement: TypeAlias = "Select[*tuple[Any, ...]]"
"""A select of any columns."""


def _held_statements() -> tuple[Statement, Statement]:
    """What :func:`held_usage` asks, built once: a statement made anew is coerced and
    keyed again on every call, a cost the scheduler would pay on every pass."""
    holding = and_(Task.state.in_(_HOLDING), Task.node.is_not(None))
    totals = select(Task.node, func.sum(Task.cores), func.sum(func.coalesce(Task.memory, 0)))
    gpu_ids, cpuset = cast(Task.gpu_ids, String), cast(Task.cpuset, String)
    pinned = select(Task.node, gpu_ids, cpuset).where(holding, or_(gpu_ids != "[]", cpuset != "[]"))
    return totals.where(holding).group_by(Task.node), pinned


_HELD_TOTALS, _HELD_PINNED = _held_statements()
_NODE_ROWS = select(Node.name, Node.status, Node.draining, cast(Node.inventory, String)).order_by(
    Node.name
)


def held_usage(s: Session) -> dict[str, NodeUsage]:
    """What the tasks holding resources hold, by node (nodes holding nothing are absent):
    cores and memory summed by the database, GPU ids and pinned CPUs read only from the
    tasks that have some."""
    usage: dict[str, NodeUsage] = {}
    for node, cores, memory in s.execute(_HELD_TOTALS):
        assert node is not None  # selected so
        usage[node] = NodeUsage(cores=int(cores or 0), memory=int(memory or 0))
    for node, gpus, cpus in s.execute(_HELD_PINNED):
        assert node is not None  # selected so; and summed above
        usage[node].gpu_ids.update(_ints(gpus))
        usage[node].pinned_cpus.update(_ints(cpus))
    return usage


def node_snapshots(s: Session) -> list[NodeSnapshot]:
    held = held_usage(s)
    return [
        NodeSnapshot(
            name=name,
            capacity=capacity_from(stored),
            usage=held.get(name) or NodeUsage(),
            schedulable=status == NodeStatus.ONLINE and not draining,
        )
        for name, status, draining, stored in s.execute(_NODE_ROWS)
    ]
