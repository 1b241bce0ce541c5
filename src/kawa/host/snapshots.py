"""Read-only scheduler snapshots of the cluster, built from the database."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from kawa.core.resources import NodeUsage
from kawa.core.scheduler import NodeSnapshot
from kawa.core.task_states import HOLDS_RESOURCES
from kawa.host.views import allocation_of, capacity_of
from kawa.protocol.nodes import NodeInventory, NodeStatus
from kawa.store.models import Node, Task


def holding_by_node(s: Session) -> dict[str, list[Task]]:
    held: dict[str, list[Task]] = defaultdict(list)
    states = [st.value for st in HOLDS_RESOURCES]
    for task in s.scalars(select(Task).where(Task.state.in_(states))):
        if task.node:
            held[task.node].append(task)
    return held


def node_snapshots(s: Session) -> list[NodeSnapshot]:
    held = holding_by_node(s)
    return [
        NodeSnapshot(
            name=node.name,
            capacity=capacity_of(NodeInventory.model_validate(node.inventory)),
            usage=NodeUsage.of([allocation_of(t) for t in held.get(node.name, [])]),
            schedulable=node.status == NodeStatus.ONLINE and not node.draining,
        )
        for node in s.scalars(select(Node).order_by(Node.name))
    ]
