"""Read-only scheduler snapshots of the cluster, built from the database.

Stored inventories and held resources are read as plain columns (JSON as its stored
text), not as ORM objects: a submission's admission check and every scheduling pass
read them, and a fleet's inventories seldom change, so each distinct inventory text is
parsed once."""

from __future__ import annotations

import json
from collections import defaultdict
from functools import lru_cache

from sqlalchemy import String, cast, select
from sqlalchemy.orm import Session

from kawa.core.resources import Allocation, NodeCapacity, NodeUsage
from kawa.core.scheduler import NodeSnapshot
from kawa.core.task_states import HOLDS_RESOURCES
from kawa.host.views import capacity_of
from kawa.protocol.nodes import NodeInventory, NodeStatus
from kawa.store.models import Node, Task

_HOLDING = [st.value for st in HOLDS_RESOURCES]


def holding_by_node(s: Session) -> dict[str, list[Task]]:
    held: dict[str, list[Task]] = defaultdict(list)
    for task in s.scalars(select(Task).where(Task.state.in_(_HOLDING))):
        if task.node:
            held[task.node].append(task)
    return held


@lru_cache(maxsize=4096)
def capacity_from(stored: str) -> NodeCapacity:
    """The capacity of a node whose inventory is stored as the JSON text ``stored``."""
    return capacity_of(NodeInventory.model_validate(json.loads(stored)))


def capacities(s: Session) -> dict[str, NodeCapacity]:
    """Every registered node's capacity (online or not), by name."""
    rows = s.execute(select(Node.name, cast(Node.inventory, String)).order_by(Node.name))
    return {name: capacity_from(stored) for name, stored in rows}


def _ints(stored: str | None) -> tuple[int, ...]:
    """A stored JSON list of integers (GPU ids, a cpuset): mostly empty."""
    if not stored or stored == "[]":
        return ()
    return tuple(json.loads(stored))


def held_usage(s: Session) -> dict[str, NodeUsage]:
    """What the tasks holding resources hold, by node (nodes holding nothing are absent)."""
    rows = s.execute(
        select(
            Task.node,
            Task.cores,
            Task.memory,
            Task.numa,
            cast(Task.gpu_ids, String),
            cast(Task.cpuset, String),
        ).where(Task.state.in_(_HOLDING), Task.node.is_not(None))
    )
    usage: dict[str, NodeUsage] = defaultdict(NodeUsage)
    for node, cores, memory, numa, gpu_ids, cpuset in rows:
        assert node is not None  # selected so
        allocation = Allocation(node, cores, memory or 0, _ints(gpu_ids), numa, _ints(cpuset))
        usage[node].add(allocation)
    return usage


def node_snapshots(s: Session) -> list[NodeSnapshot]:
    held = held_usage(s)
    inventory = cast(Node.inventory, String)
    rows = s.execute(select(Node.name, Node.status, Node.draining, inventory).order_by(Node.name))
    return [
        NodeSnapshot(
            name=name,
            capacity=capacity_from(stored),
            usage=held.get(name) or NodeUsage(),
            schedulable=status == NodeStatus.ONLINE and not draining,
        )
        for name, status, draining, stored in rows
    ]
