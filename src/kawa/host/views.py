"""Conversions from database rows to wire models."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, overload

from kawa.core.resources import Allocation, NodeCapacity, NodeUsage, NumaZone
from kawa.core.task_states import TaskKind, TaskState
from kawa.protocol.nodes import HeldResources, NodeInventory, NodeStatus, NodeUsageSample, NodeView
from kawa.protocol.tasks import Mount, NetworkMode, TaskView, TransitionView
from kawa.store.models import Node, Task, TaskTransition


@overload
def aware(at: datetime) -> datetime: ...
@overload
def aware(at: None) -> None: ...
def aware(at: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; everything we store is UTC."""
    if at is not None and at.tzinfo is None:
        return at.replace(tzinfo=UTC)
    return at


def run_fields(task: Task) -> dict[str, Any]:
    """What a task runs and with what, as both its view and its run order carry it
    (the one place these fields are copied from the row)."""
    return {
        "kind": TaskKind(task.kind),
        "command": list(task.command),
        "env": dict(task.env),
        "mounts": [Mount.model_validate(m) for m in task.mounts],
        "cores": task.cores,
        "memory": task.memory,
        "gpu_ids": list(task.gpu_ids),
        "numa": task.numa,
        "cpuset": list(task.cpuset),
        "privileged": task.privileged,
        "workdir": task.workdir,
        "network": NetworkMode(task.network),
        "timeout": task.timeout,
        "native": task.native,
        "ssh_key": task.ssh_key,
    }


def task_view(task: Task, history: Iterable[TaskTransition] = ()) -> TaskView:
    return TaskView(
        **run_fields(task),
        id=str(task.id),
        batch_id=str(task.batch_id),
        name=task.name,
        state=TaskState(task.state),
        desired=task.desired,
        owner=task.owner,
        target=task.target,
        node=task.node,
        gpus=task.gpus,
        container=task.container,
        image=task.image,
        priority=task.priority,
        exit_code=task.exit_code,
        error=task.error,
        waiting_reason=task.waiting_reason,
        created_at=aware(task.created_at),
        started_at=aware(task.started_at),
        finished_at=aware(task.finished_at),
        history=[
            TransitionView(
                at=aware(h.at),
                source=TaskState(h.source) if h.source else None,
                target=TaskState(h.target),
                event=h.event,
                cause=h.cause,
            )
            for h in history
        ],
    )


def allocation_of(task: Task) -> Allocation:
    return Allocation(
        node=task.node or "",
        cores=task.cores,
        memory=task.memory or 0,
        gpu_ids=tuple(task.gpu_ids),
        numa=task.numa,
        cpuset=tuple(task.cpuset),
    )


def capacity_of(inventory: NodeInventory) -> NodeCapacity:
    return NodeCapacity(
        cores=inventory.cores,
        memory=inventory.memory,
        numa=tuple(NumaZone(z.id, frozenset(z.cpus), z.memory) for z in inventory.numa),
        gpus=frozenset(g.index for g in inventory.gpus),
    )


def node_view(node: Node, holding: list[Task]) -> NodeView:
    usage = NodeUsage.of([allocation_of(t) for t in holding])
    status = NodeStatus(node.status)
    if node.draining and status is NodeStatus.ONLINE:
        status = NodeStatus.DRAINING
    return NodeView(
        name=node.name,
        url=node.url,
        status=status,
        inventory=NodeInventory.model_validate(node.inventory),
        held=HeldResources(
            cores=usage.cores,
            memory=usage.memory,
            gpu_ids=sorted(usage.gpu_ids),
            pinned_cpus=sorted(usage.pinned_cpus),
        ),
        usage=NodeUsageSample.model_validate(node.usage) if node.usage else None,
        registered_at=aware(node.registered_at),
        last_heartbeat=aware(node.last_heartbeat),
        running_tasks=sum(1 for t in holding if t.state == TaskState.RUNNING),
    )
