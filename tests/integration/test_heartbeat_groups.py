"""Heartbeats recorded together, on real SQLite and PostgreSQL: one transaction for a
group, a heartbeat of a node not registered refused alone (the others recorded), and a
heartbeat whose listing matches what the host has writes the node's row and nothing else."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from kawa.core.task_states import TaskState
from kawa.host.errors import NotFound, Unavailable
from kawa.host.events import EventBus
from kawa.host.ledger import Ledger
from kawa.host.node_service import NodeService
from kawa.host.runner_link import RunnerLink
from kawa.protocol.nodes import (
    Heartbeat,
    NodeInventory,
    NodeRegistration,
    NodeStatus,
    NodeUsageSample,
    RunnerTaskObservation,
)
from kawa.store.database import make_engine, migrate, session_factory, sqlite_url
from kawa.store.models import Node, Task, TaskTransition
from tests.postgres_support import fresh_database

NOW = datetime.now(UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    with fresh_database() if request.param == "postgres" else nullcontext() as url:
        engine = make_engine(url or sqlite_url(tmp_path / "kawa.db"))
        migrate(engine)
        try:
            yield session_factory(engine)
        finally:
            engine.dispose()


def running(task_id: int, node: str) -> dict[str, Any]:
    return dict(
        id=task_id, batch_id=1, name=None, kind="command", state="running", desired="run",
        owner="admin", command=["sleep", "1h"], target=None, node=node, numa=None, gpu_ids=[],
        cpuset=[], cores=1, memory=None, gpus=0, env={}, mounts=[], container=None, image="x",
        native=False, privileged=False, workdir=None, network="host", timeout=None, priority=0,
        exit_code=None, error=None, waiting_reason=None, created_at=NOW, started_at=NOW,
        finished_at=None, ssh_key=None, batch_max_parallel=None,
    )  # fmt: skip


@pytest.fixture
def nodes(sessions: sessionmaker[Session]) -> NodeService:
    """Nodes n1 and n2 registered, two tasks running on each."""
    ledger = Ledger(sessions, EventBus())
    service = NodeService(ledger, ledger.bus, RunnerLink("secret"), "cluster", 5.0, 30.0)
    for name in ("n1", "n2"):
        service.register(
            NodeRegistration(
                name=name,
                url=f"http://127.0.0.1:9/{name}",
                inventory=NodeInventory(cores=8, memory=2**30),
            )
        )
    with sessions.begin() as s:
        s.execute(
            insert(Task), [running(1, "n1"), running(2, "n1"), running(3, "n2"), running(4, "n2")]
        )
    return service


def heartbeat(name: str, *listed: int, cpu: float = 1.0) -> Heartbeat:
    usage = NodeUsageSample(at=datetime.now(UTC), cpu_percent=cpu, memory_used=1, memory_percent=1)
    tasks = [RunnerTaskObservation(task_id=str(t), state="running") for t in listed]
    return Heartbeat(name=name, usage=usage, tasks=tasks)


def rows(sessions: sessionmaker[Session]) -> dict[str, tuple[str, datetime | None, Any]]:
    with sessions() as s:
        return {n.name: (n.status, n.last_heartbeat, n.usage) for n in s.scalars(select(Node))}


def test_a_heartbeat_of_an_unknown_node_is_refused_alone(
    nodes: NodeService, sessions: sessionmaker[Session]
) -> None:
    before = rows(sessions)
    answers = nodes.heartbeats(
        [heartbeat("n1", 1, 2, cpu=11), heartbeat("ghost", 7), heartbeat("n2", 3, 4, cpu=22)]
    )
    assert answers[0] == [] and answers[2] == []
    assert isinstance(answers[1], NotFound) and "ghost" in str(answers[1])
    after = rows(sessions)
    assert set(after) == {"n1", "n2"}
    for name, cpu in (("n1", 11), ("n2", 22)):
        assert _aware(after[name][1]) > _aware(before[name][1])
        assert after[name][2]["cpu_percent"] == cpu


def test_heartbeats_that_arrive_together_are_recorded_in_one_transaction(
    nodes: NodeService, sessions: sessionmaker[Session]
) -> None:
    engine = sessions.kw["bind"]
    commits: list[object] = []

    def committed(conn: Any) -> None:
        commits.append(conn)

    async def main() -> list[Any]:
        beats = [
            heartbeat("n1", 1, 2),
            heartbeat("ghost"),
            heartbeat("n2", 3, 4),
            heartbeat("n1", 1),
        ]
        return list(await asyncio.gather(*(nodes.beat(hb) for hb in beats), return_exceptions=True))

    before = rows(sessions)
    event.listen(engine, "commit", committed)
    try:
        first, ghost, second, again = asyncio.run(main())
    finally:
        event.remove(engine, "commit", committed)
    assert (first, second, again) == (None, None, None)
    assert isinstance(ghost, NotFound)
    assert len(commits) == 1, "one transaction for the group"
    after = rows(sessions)
    assert all(_aware(after[n][1]) > _aware(before[n][1]) for n in ("n1", "n2"))


def test_an_offline_node_back_in_a_group_is_online_and_its_lost_tasks_run_again(
    nodes: NodeService, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as s:
        s.execute(update(Node).where(Node.name == "n2").values(status=NodeStatus.OFFLINE.value))
        s.execute(update(Task).where(Task.node == "n2").values(state=TaskState.LOST.value))
    nodes.heartbeats([heartbeat("n1", 1, 2), heartbeat("n2", 3, 4)])
    assert rows(sessions)["n2"][0] == NodeStatus.ONLINE.value
    with sessions() as s:
        assert {t.id: t.state for t in s.scalars(select(Task))} == {
            1: "running",
            2: "running",
            3: "running",
            4: "running",
        }


def test_a_node_whose_heartbeat_waits_for_its_write_is_not_silent(
    sessions: sessionmaker[Session],
) -> None:
    started = time.monotonic()
    ledger = Ledger(sessions, EventBus())
    # a 2 s timeout: what runs between the heartbeat and the check below stays well
    # inside it on a loaded machine (the heartbeat itself is answered after 0.1 s)
    nodes = NodeService(ledger, ledger.bus, RunnerLink("secret"), "cluster", 0.1, 2.0)
    inventory = NodeInventory(cores=8, memory=2**30)
    nodes.register(NodeRegistration(name="n1", url="http://127.0.0.1:9", inventory=inventory))
    with sessions.begin() as s:  # its last recorded heartbeat: long ago
        old = datetime.now(UTC) - timedelta(hours=1)
        s.execute(update(Node).where(Node.name == "n1").values(last_heartbeat=old))
    while time.monotonic() - started < 2.1:  # listening for longer than the timeout
        time.sleep(0.05)
    assert nodes.mark_offline() == ["n1"], "silent: offline"
    nodes.register(NodeRegistration(name="n1", url="http://127.0.0.1:9", inventory=inventory))
    with sessions.begin() as s:
        s.execute(update(Node).where(Node.name == "n1").values(last_heartbeat=old))

    async def main() -> list[str]:
        ledger.write_lock.acquire()  # a long write elsewhere: the heartbeat's own waits
        try:  # answered after a heartbeat interval, its write still waiting
            await asyncio.wait_for(nodes.beat(heartbeat("n1", cpu=42)), 5)
            return await asyncio.wait_for(asyncio.to_thread(nodes.mark_offline), 5)
        finally:
            ledger.write_lock.release()
            deadline = time.monotonic() + 10
            while (rows(sessions)["n1"][2] or {}).get("cpu_percent") != 42:
                assert time.monotonic() < deadline, "the heartbeat was never recorded"
                await asyncio.sleep(0.01)

    assert asyncio.run(main()) == [], "heard from: not offline"
    assert rows(sessions)["n1"][0] == NodeStatus.ONLINE.value
    assert datetime.now(UTC) - _aware(rows(sessions)["n1"][1]) < timedelta(minutes=1)


def test_a_heartbeat_that_changes_nothing_writes_only_the_nodes_row(
    nodes: NodeService, sessions: sessionmaker[Session]
) -> None:
    nodes.heartbeats([heartbeat("n1", 1, 2), heartbeat("n2", 3, 4)])  # warm: nothing to settle
    engine = sessions.kw["bind"]
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(" ".join(statement.split()).lower())

    event.listen(engine, "before_cursor_execute", seen)
    try:
        answers = nodes.heartbeats([heartbeat("n1", 1, 2), heartbeat("n2", 3, 4)])
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert answers == [[], []]
    writes = [q for q in statements if q.split()[0] in ("insert", "update", "delete")]
    assert len(writes) == 1 and writes[0].startswith("update nodes set"), writes
    reads = [q for q in statements if q.startswith("select")]
    assert len(reads) == 2, reads  # the group's nodes, and the tasks they hold (plain rows)
    with sessions() as s:
        assert s.scalar(select(TaskTransition.id).limit(1)) is None
    assert rows(sessions)["n1"][1] is not None
    assert datetime.now(UTC) - _aware(rows(sessions)["n1"][1]) < timedelta(seconds=30)


def _aware(at: datetime | None) -> datetime:
    assert at is not None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def test_a_heartbeat_waiting_for_its_write_when_the_lead_ends_is_refused(
    nodes: NodeService, sessions: sessionmaker[Session]
) -> None:
    before = rows(sessions)["n1"]

    async def main() -> BaseException | None:
        monitor = asyncio.create_task(nodes.monitor())  # the leader's work, while leading
        await asyncio.sleep(0)
        nodes.ledger.write_lock.acquire()  # the heartbeat's write waits its turn
        try:
            beat = asyncio.create_task(nodes.beat(heartbeat("n1", 1, 2, cpu=77)))
            await asyncio.sleep(0)
            monitor.cancel()  # the lead is lost meanwhile
            await asyncio.gather(monitor, return_exceptions=True)
        finally:
            nodes.ledger.write_lock.release()
        (refused,) = await asyncio.gather(beat, return_exceptions=True)
        return refused

    refused = asyncio.run(main())
    assert isinstance(refused, Unavailable), refused
    assert rows(sessions)["n1"] == before, "not written by a host that no longer leads"
    nodes.begin_leading()
    assert nodes.heartbeats([heartbeat("n1", 1, 2, cpu=78)]) == [[]]
    assert rows(sessions)["n1"][2]["cpu_percent"] == 78
