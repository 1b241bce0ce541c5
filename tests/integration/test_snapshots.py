"""The scheduler's snapshots of the cluster, read from a real SQLite database as plain
columns: they hold what the tasks' own rows, read as ORM objects, add up to."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from kawa.core.ids import IdGenerator
from kawa.core.resources import NodeUsage
from kawa.core.task_states import TaskState
from kawa.host.snapshots import capacities, held_usage, holding_by_node, node_snapshots
from kawa.host.views import allocation_of, capacity_of
from kawa.protocol.nodes import GpuInfo, NodeInventory, NumaZoneInfo
from kawa.store.models import Node, Task

IDS = IdGenerator()
GIB = 1 << 30


def task_row(node: str | None, state: str, rng: random.Random) -> dict[str, Any]:
    gpu_ids = sorted(rng.sample(range(4), rng.choice([0, 0, 1, 2])))
    cpuset = sorted(rng.sample(range(16), rng.choice([0, 0, 2])))
    return dict(
        id=IDS.next(), batch_id=1, name=None, kind="command", state=state, desired="run",
        owner="u", command=["true"], target=None, node=node, numa=0 if cpuset else None,
        gpu_ids=gpu_ids, cpuset=cpuset, cores=rng.randint(1, 4),
        memory=rng.choice([None, GIB, 3 * GIB]), gpus=len(gpu_ids), env={}, mounts=[],
        container=None, image="i", native=False, privileged=False, workdir=None,
        network="host", timeout=None, priority=0, created_at=datetime.now(UTC),
        waiting_reason=None, ssh_key=None, batch_max_parallel=None,
    )  # fmt: skip


def inventory(cores: int, gpus: int) -> NodeInventory:
    return NodeInventory(
        cores=cores,
        memory=64 * GIB,
        numa=[NumaZoneInfo(id=0, cpus=list(range(cores)), memory=64 * GIB)],
        gpus=[GpuInfo(index=i, uuid=f"GPU-{i}", name="g", memory_total=GIB) for i in range(gpus)],
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_held_usage_adds_up_what_the_holding_tasks_hold(
    sessions: sessionmaker[Session], seed: int
) -> None:
    rng = random.Random(seed)
    nodes = ["a", "b", "c", "d"]
    states = [s.value for s in TaskState]
    rows = [task_row(rng.choice([*nodes, None]), rng.choice(states), rng) for _ in range(300)]
    with sessions.begin() as s:
        s.execute(insert(Task), rows)
    with sessions() as s:
        expected = {
            node: NodeUsage.of([allocation_of(t) for t in tasks])
            for node, tasks in holding_by_node(s).items()
        }
        assert held_usage(s) == expected
    assert any(u.gpu_ids for u in expected.values()), "no GPU held: the data tests nothing"
    assert any(u.pinned_cpus for u in expected.values()), "no CPU pinned"


def test_snapshots_carry_each_node_s_stored_inventory_and_state(
    sessions: sessionmaker[Session],
) -> None:
    now = datetime.now(UTC)
    stored = {"a": inventory(8, 2), "b": inventory(16, 0), "c": inventory(8, 2)}
    with sessions.begin() as s:
        for name, inv in stored.items():
            s.add(Node(name=name, url=f"http://{name}", status="online" if name != "b" else
                       "offline", draining=name == "c", inventory=inv.model_dump(mode="json"),
                       registered_at=now))  # fmt: skip
        s.execute(insert(Task), [task_row("a", "running", random.Random(4))])
    with sessions() as s:
        expected = {name: capacity_of(inv) for name, inv in stored.items()}
        assert capacities(s) == expected
        snapshots = node_snapshots(s)
    assert [(n.name, n.capacity, n.schedulable) for n in snapshots] == [
        ("a", expected["a"], True),
        ("b", expected["b"], False),
        ("c", expected["c"], False),
    ]
    assert snapshots[0].usage.cores > 0 and snapshots[1].usage == NodeUsage()
    with sessions.begin() as s:  # a changed inventory is read as it is now
        node = s.get(Node, "a")
        assert node is not None
        node.inventory = inventory(32, 4).model_dump(mode="json")
    with sessions() as s:
        assert capacities(s)["a"] == capacity_of(inventory(32, 4))
