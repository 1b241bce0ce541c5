"""The node list as JSON. Each node's part is validated and serialised once and kept
in memory, keyed by everything it is made of (the node's stored row, its inventory and
last usage as stored text, and what its tasks hold): a changed row or holding makes a
new part, so nothing needs to be told when a node changes."""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import String, cast, func, select
from sqlalchemy.orm import Session

from kawa.core.task_states import TaskState
from kawa.host.snapshots import held_usage
from kawa.host.views import aware
from kawa.protocol.nodes import NodeStatus, NodeView
from kawa.store.models import Node, Task

NODE_VIEW = TypeAdapter(NodeView)
_ROW = (
    Node.name,
    Node.url,
    Node.status,
    Node.draining,
    cast(Node.inventory, String),
    cast(Node.usage, String),
    Node.registered_at,
    Node.last_heartbeat,
)
Held = tuple[int, int, tuple[int, ...], tuple[int, ...], int]
"""Cores, memory, GPU ids and pinned CPUs held on a node, and how many tasks run there."""


class NodeListing:
    """Serialised parts of the node list, one per node, reused while unchanged."""

    def __init__(self) -> None:
        self._parts: dict[str, tuple[tuple[Any, ...], bytes]] = {}

    def page(self, s: Session) -> bytes:
        """The JSON list of every node's ``NodeView``, by name."""
        held = _held_by_node(s)
        parts: dict[str, tuple[tuple[Any, ...], bytes]] = {}
        for row in s.execute(select(*_ROW).order_by(Node.name)):
            key = (*row, held.get(row[0]))
            known = self._parts.get(row[0])
            parts[row[0]] = known if known is not None and known[0] == key else (key, _part(key))
        self._parts = parts  # nodes gone are forgotten
        return b"[" + b",".join(part for _, part in parts.values()) + b"]"


def _part(key: tuple[Any, ...]) -> bytes:
    """One node's ``NodeView`` as JSON, from its stored row and what its tasks hold."""
    name, url, status, draining, inventory, usage, registered_at, last_heartbeat, held = key
    if draining and status == NodeStatus.ONLINE.value:
        status = NodeStatus.DRAINING.value
    cores, memory, gpu_ids, pinned, running = held or (0, 0, (), (), 0)
    view = {
        "name": name,
        "url": url,
        "status": status,
        "inventory": json.loads(inventory),
        "held": {"cores": cores, "memory": memory, "gpu_ids": gpu_ids, "pinned_cpus": pinned},
        "usage": (json.loads(usage) if usage else None) or None,
        "registered_at": aware(registered_at),
        "last_heartbeat": aware(last_heartbeat),
        "running_tasks": running,
    }
    return NODE_VIEW.dump_json(NODE_VIEW.validate_python(view))


def _held_by_node(s: Session) -> dict[str, Held]:
    """What the tasks holding resources hold on each node, and how many run there."""
    counts = (
        select(Task.node, func.count())
        .where(Task.state == TaskState.RUNNING.value, Task.node.is_not(None))
        .group_by(Task.node)
    )
    running = {node: int(n) for node, n in s.execute(counts)}
    return {
        node: (
            usage.cores,
            usage.memory,
            tuple(sorted(usage.gpu_ids)),
            tuple(sorted(usage.pinned_cpus)),
            running.get(node, 0),
        )
        for node, usage in held_usage(s).items()
    }
