"""A heartbeat reads the tasks the host has on its node as plain rows and changes only
those the runner's listing calls for (against a real SQLite database): a lost task
listed again runs, a stopped one still listed is killed again, an unlisted running one
fails after the node timeout, an assignment listed running starts, and a task listed as
the host has it is left as it was."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from kawa.core.task_states import Action, TaskState
from kawa.host.events import EventBus
from kawa.host.ledger import Ledger
from kawa.host.node_service import NodeService
from kawa.host.runner_link import RunnerLink
from kawa.protocol.nodes import (
    Heartbeat,
    NodeInventory,
    NodeRegistration,
    NodeUsageSample,
    RunnerTaskObservation,
)
from kawa.store.models import Task, TaskTransition

NOW = datetime.now(UTC)
LOST, STOPPING, UNLISTED, STEADY, ASSIGNED, ELSEWHERE = range(1, 7)


def task(task_id: int, state: TaskState, desired: str = "run", node: str = "n1") -> dict[str, Any]:
    started = state is not TaskState.ASSIGNING
    return dict(
        id=task_id, batch_id=1, name=None, kind="command", state=state.value, desired=desired,
        owner="admin", command=["sleep", "1h"], target=None, node=node, numa=None, gpu_ids=[],
        cpuset=[], cores=1, memory=None, gpus=0, env={}, mounts=[], container=None, image="x",
        native=False, privileged=False, workdir=None, network="host", timeout=None, priority=0,
        exit_code=None, error=None, waiting_reason=None, created_at=NOW,
        started_at=NOW if started else None, finished_at=None, ssh_key=None,
        batch_max_parallel=None,
    )  # fmt: skip


@pytest.fixture
def service(
    sessions: sessionmaker[Session],
) -> Iterator[tuple[NodeService, sessionmaker[Session]]]:
    ledger = Ledger(sessions, EventBus())
    nodes = NodeService(ledger, ledger.bus, RunnerLink("secret"), "cluster", 0.5, 0.3)
    nodes.register(
        NodeRegistration(
            name="n1", url="http://127.0.0.1:9", inventory=NodeInventory(cores=8, memory=2**30)
        )
    )
    with sessions.begin() as s:
        s.execute(
            insert(Task),
            [
                task(LOST, TaskState.LOST),
                task(STOPPING, TaskState.RUNNING, desired="stop"),
                task(UNLISTED, TaskState.RUNNING),
                task(STEADY, TaskState.RUNNING),
                task(ASSIGNED, TaskState.ASSIGNING),
                task(ELSEWHERE, TaskState.RUNNING, node="n2"),
            ],
        )
    yield nodes, sessions


def heartbeat(*listed: int) -> Heartbeat:
    usage = NodeUsageSample(at=datetime.now(UTC), cpu_percent=1, memory_used=1, memory_percent=1)
    tasks = [RunnerTaskObservation(task_id=str(t), state="running") for t in listed]
    return Heartbeat(name="n1", usage=usage, tasks=tasks)


def states(sessions: sessionmaker[Session]) -> dict[int, str]:
    with sessions() as s:
        return {t.id: t.state for t in s.scalars(select(Task))}


def transitions(sessions: sessionmaker[Session], task_id: int) -> int:
    with sessions() as s:
        query = select(func.count()).where(TaskTransition.task_id == task_id)
        return int(s.scalar(query) or 0)


def test_a_heartbeat_changes_what_its_listing_calls_for_and_nothing_else(
    service: tuple[NodeService, sessionmaker[Session]],
) -> None:
    nodes, sessions = service
    todo = nodes.heartbeat(heartbeat(LOST, STOPPING, STEADY, ASSIGNED, ELSEWHERE))
    assert todo == [(Action.SEND_KILL, "http://127.0.0.1:9", STOPPING)]
    found = states(sessions)
    assert found[LOST] == "running"
    assert found[ASSIGNED] == "running"
    assert found[STOPPING] == found[STEADY] == found[ELSEWHERE] == "running"
    assert transitions(sessions, STEADY) == transitions(sessions, STOPPING) == 0
    assert transitions(sessions, ELSEWHERE) == 0
    assert found[UNLISTED] == "running", "missing for less than the node timeout"
    deadline = time.monotonic() + 10
    while states(sessions)[UNLISTED] == "running":
        assert time.monotonic() < deadline, "the unlisted task never failed"
        nodes.heartbeat(heartbeat(LOST, STOPPING, STEADY, ASSIGNED))
    assert states(sessions)[UNLISTED] == "failed"
    assert transitions(sessions, STEADY) == 0
