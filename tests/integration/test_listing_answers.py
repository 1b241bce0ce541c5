"""The task and node lists' answers, read as plain rows and serialised once (a node's
part kept while unchanged), are byte for byte what the views of the ORM entities
serialise to (as the host answered before): for tasks of every state and shape, under
every filter and page, for admins and users; for nodes of every status, with what their
tasks hold, after each kind of change."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from kawa.core.task_states import TaskState
from kawa.host.app import prepare_database
from kawa.host.auth import Authenticator
from kawa.host.snapshots import holding_by_node
from kawa.host.task_pages import TaskFilter, TaskParts
from kawa.host.views import node_view, task_view
from kawa.protocol.nodes import NodeView
from kawa.protocol.tasks import TaskView
from kawa.store.models import Node, Task
from tests.conftest import BASE_IMAGE
from tests.integration.cluster import Cluster
from tests.postgres_support import fresh_database

PAGE = TypeAdapter(list[TaskView])
NODE_PAGE = TypeAdapter(list[NodeView])
BASE = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
OWNERS = ("admin", "alice", "bob")


def task_row(i: int) -> dict[str, Any]:
    """Task ``i``: its state, kind and optional parts vary with ``i``."""
    states = list(TaskState)
    state = states[i % len(states)]
    vps = i % 7 == 3
    placed = state not in (TaskState.PENDING, TaskState.REMOVED) and i % 5 != 1
    return dict(
        id=1_000_000 + i,
        batch_id=900_000 + i // 4,
        name=None if i % 3 else f"job-{i}-é✓",
        kind="vps" if vps else "command",
        state=state.value,
        desired=("run", "stop", "kill")[i % 3],
        owner=OWNERS[i % len(OWNERS)],
        command=[] if vps else ["python", "-c", f'print("ALPHA {i}\\n", "ü")'],
        target=None if i % 4 else f"n{i % 3}:0::1",
        node=f"n{i % 3}" if placed else None,
        numa=i % 2 if placed else None,
        gpu_ids=[i % 4, (i + 1) % 4] if placed and i % 2 else [],
        cpuset=[0, 1, i % 8] if placed and i % 3 == 0 else [],
        cores=1 + i % 4,
        memory=None if i % 2 else (i + 1) * 2**30,
        gpus=2 if i % 2 else 0,
        env={} if i % 3 == 1 else {"A": "1", "ÜNI": "wert ✓", "EMPTY": ""},
        mounts=[] if i % 4 else [{"source": "/data", "target": f"/mnt/d{i}", "read_only": True}],
        container=None if i % 2 else "pytorch",
        image="busybox:1.36" if i % 2 else None,
        native=i % 11 == 5,
        privileged=i % 13 == 2,
        workdir=None if i % 3 else "/work/dir",
        network="bridge" if vps or i % 5 == 0 else "host",
        timeout=None if i % 2 else 3600.5 + i,
        priority=(i % 7) - 3,
        exit_code=None if i % 3 else (i % 256) - 1,
        error=None if i % 4 else f'failed: "quoted" \\ {i}\ttab',
        waiting_reason=None if i % 5 else "no node has 4 free cores",
        created_at=BASE + timedelta(seconds=i),
        started_at=None if i % 2 else BASE + timedelta(seconds=i, microseconds=17),
        finished_at=None if i % 3 else BASE + timedelta(seconds=2 * i),
        ssh_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEkey me@box" if vps else None,
        batch_max_parallel=None if i % 6 else 2,
    )


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest) -> str:
    """The kind of database the hosts below use."""
    return str(request.param)


@contextmanager
def host_on(database: str, root: Path) -> Iterator[Cluster]:
    """A host (no runners) on SQLite in its directory, or on a fresh PostgreSQL database."""
    with fresh_database() if database == "postgres" else nullcontext() as url:
        c = Cluster(root, BASE_IMAGE, database_url=url)
        try:
            c.start_host()
            yield c
        finally:
            c.close()


@pytest.fixture(scope="module")
def listed(
    docker_available: None, database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Cluster, sessionmaker[Session]]]:
    """A host (no runners) whose database holds 90 varied tasks."""
    with host_on(database, tmp_path_factory.mktemp("listing")) as c:
        sessions = prepare_database(c.host_config())
        with sessions.begin() as s:
            s.execute(insert(Task), [task_row(i) for i in range(90)])
        yield c, sessions
        sessions.kw["bind"].dispose()


def old_answer(sessions: sessionmaker[Session], keep: Callable[[Task], bool], limit: int) -> bytes:
    """The list as the host built it before: ORM entities, a validated view each, and
    FastAPI's serialisation of the list (a pydantic ``dump_json``)."""
    with sessions() as s:
        tasks = [t for t in s.scalars(select(Task).order_by(Task.id.desc())) if keep(t)]
        return PAGE.dump_json([task_view(t) for t in tasks[:limit]])


def answered(c: Cluster, token: str, params: dict[str, Any]) -> bytes:
    reply = httpx.get(
        f"{c.url}/api/v1/tasks", params=params, headers={"Authorization": f"Bearer {token}"}
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/json"
    return reply.content


def contains(text: str) -> Callable[[Task], bool]:
    low = text.lower()
    return lambda t: low in (t.name or "").lower() or low in json.dumps(t.command).lower()


FILTERS: list[tuple[dict[str, Any], Callable[[Task], bool], int]] = [
    ({}, lambda t: True, 200),
    ({"limit": 7}, lambda t: True, 7),
    ({"before": 1_000_050, "limit": 9}, lambda t: t.id < 1_000_050, 9),
    ({"state": ["running", "lost"]}, lambda t: t.state in ("running", "lost"), 200),
    ({"node": "n1"}, lambda t: t.node == "n1", 200),
    ({"owner": "bob"}, lambda t: t.owner == "bob", 200),
    ({"kind": "vps"}, lambda t: t.kind == "vps", 200),
    ({"batch": "900010"}, lambda t: t.batch_id == 900_010, 200),
    ({"q": "alpha 1"}, contains("alpha 1"), 200),
    ({"q": "JOB-3"}, contains("JOB-3"), 200),
    (
        {"state": "completed", "node": "n1", "limit": 3},
        lambda t: t.state == "completed" and t.node == "n1",
        3,
    ),
]


@pytest.mark.parametrize(("params", "keep", "limit"), FILTERS, ids=[str(f[0]) for f in FILTERS])
def test_the_task_list_answers_what_the_entities_views_serialise_to(
    listed: tuple[Cluster, sessionmaker[Session]],
    params: dict[str, Any],
    keep: Callable[[Task], bool],
    limit: int,
) -> None:
    c, sessions = listed
    expected = old_answer(sessions, keep, limit)
    got = answered(c, c.token, params)
    assert json.loads(got) == json.loads(expected)
    assert got == expected
    assert json.loads(got), "the filter matches some tasks"


def test_a_user_lists_only_their_own_tasks_as_before(
    listed: tuple[Cluster, sessionmaker[Session]],
) -> None:
    c, sessions = listed
    alice = Authenticator(sessions, c.secret).create_token("alice", "user")
    got = answered(c, alice, {"limit": 20})
    assert got == old_answer(sessions, lambda t: t.owner == "alice", 20)
    assert {v["owner"] for v in json.loads(got)} == {"alice"}
    assert answered(c, alice, {"owner": "bob"}) == b"[]"


def test_the_sample_covers_every_state_and_shape(
    listed: tuple[Cluster, sessionmaker[Session]],
) -> None:
    """The tasks above are as varied as claimed (so the comparisons mean something)."""
    c, _ = listed
    views = PAGE.validate_json(answered(c, c.token, {"limit": 1000}))
    assert len(views) == 90
    assert {v.state for v in views} == set(TaskState)
    assert {v.kind.value for v in views} == {"command", "vps"}
    assert any(v.mounts for v in views) and any(v.gpu_ids for v in views)
    assert any(v.node is None for v in views) and any(v.node for v in views)
    assert any(v.error for v in views) and any(v.name for v in views) and any(v.env for v in views)
    assert any(v.started_at is None for v in views) and all(v.created_at.tzinfo for v in views)


@pytest.mark.parametrize(
    ("params", "status"),
    [({"state": "nonsense"}, 400), ({"kind": "other"}, 400), ({"limit": 0}, 422)],
)
def test_bad_filters_are_refused_as_before(
    listed: tuple[Cluster, sessionmaker[Session]], params: dict[str, Any], status: int
) -> None:
    c, _ = listed
    reply = httpx.get(
        f"{c.url}/api/v1/tasks", params=params, headers={"Authorization": f"Bearer {c.token}"}
    )
    assert reply.status_code == status, reply.text


def test_the_task_list_follows_each_change_of_a_listed_task(
    listed: tuple[Cluster, sessionmaker[Session]],
) -> None:
    """A task's part of the answer is kept between lists; every change of its row shows,
    even one written behind the host's back (here: by the test), within the second the
    host keeps a whole answer at most."""
    c, sessions = listed
    newest = 1_000_089
    changes: list[dict[str, Any]] = [
        {"state": "failed", "error": "exit 3", "exit_code": 3},
        {"env": {"B": "2"}},
        {"mounts": [{"source": "/x", "target": "/y", "read_only": False}]},
        {"finished_at": BASE + timedelta(days=3)},
        {"name": "renamed"},
        {"gpu_ids": [3], "node": "n9"},
    ]
    seen = [answered(c, c.token, {"limit": 5})]
    for values in changes:
        with sessions.begin() as s:
            s.execute(update(Task).where(Task.id == newest).values(**values))
        want = old_answer(sessions, lambda t: True, 5)
        deadline = time.monotonic() + 5
        while (got := answered(c, c.token, {"limit": 5})) != want:
            assert got in seen, f"{values}: an answer neither old nor right"
            assert time.monotonic() < deadline, f"{values} does not show"
            time.sleep(0.05)
        assert got not in seen, f"{values} shows"
        seen.append(got)


def test_kept_parts_start_over_when_full(
    listed: tuple[Cluster, sessionmaker[Session]],
) -> None:
    """A cache smaller than a page still answers every page right."""
    _, sessions = listed
    parts = TaskParts(limit=7)
    for params, keep, limit in [*FILTERS, *FILTERS]:
        wanted = TaskFilter(
            states=[params["state"]]
            if isinstance(params.get("state"), str)
            else params.get("state", ()),
            node=params.get("node"),
            batch=params.get("batch"),
            kind=params.get("kind"),
            limit=params.get("limit", 200),
            owner=params.get("owner"),
            text=params.get("q"),
            before=params.get("before"),
        )
        with sessions() as s:
            got = parts.page(s, wanted.query(None))
        assert got == old_answer(sessions, keep, limit), params


def inventory(i: int) -> dict[str, Any]:
    gpus = [
        {"index": g, "uuid": f"GPU-{i}-{g}", "name": "H200 ✓", "memory_total": 2**37}
        for g in range(i % 3 * 2)
    ]
    numa = [{"id": z, "cpus": [2 * z, 2 * z + 1], "memory": 2**33} for z in range(1 + i % 2)]
    return {"cores": 4 + i, "memory": 2**34 + i, "numa": numa, "gpus": gpus}


def usage(i: int) -> dict[str, Any] | None:
    if i % 4 == 3:
        return None
    return {
        "at": (BASE + timedelta(seconds=i, microseconds=5)).isoformat(),
        "cpu_percent": 12.5 + i,
        "memory_used": 2**30 * i,
        "memory_percent": 33.3,
        "memory_total": None if i % 2 else 2**34,
        "load": [0.5, 1.25, 2.0],
        "gpus": [{"index": 0, "utilization": 50.0, "temperature": 61.5}] if i % 3 == 0 else [],
        "numa": [{"id": 0, "cpu_percent": None if i % 2 else 7.5}],
        "temperatures": {"coretemp/Package id 0": 48.0 + i},
    }


def node_row(i: int) -> dict[str, Any]:
    """Node ``i``: online (its last heartbeat ahead, so the host's liveness check leaves
    it be), online and draining, or offline; with and without GPUs and a usage."""
    online = i % 3 != 2
    return dict(
        name=f"node-{i:02d}",
        url=f"http://127.0.0.{i + 2}:8101",
        status="online" if online else "offline",
        draining=i % 4 == 1,
        inventory=inventory(i),
        usage=usage(i),
        registered_at=BASE + timedelta(minutes=i),
        last_heartbeat=datetime.now(UTC) + timedelta(days=1) if online else BASE,
    )


def holding_row(i: int, state: TaskState) -> dict[str, Any]:
    """A task holding resources on ``node-{i % 6}`` (and some that hold none)."""
    row = task_row(i)
    row.update(
        id=2_000_000 + i,
        state=state.value,
        node=f"node-{i % 6:02d}",
        gpu_ids=[i % 2] if i % 3 == 0 else [],
        cpuset=[i % 4] if i % 5 == 0 else [],
        numa=i % 2 if i % 5 == 0 else None,
    )
    return row


@pytest.fixture(scope="module")
def nodes(
    docker_available: None, database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Cluster, sessionmaker[Session]]]:
    """A host (no runners, no pending tasks) whose database holds 12 varied nodes and
    tasks on them, holding resources or done."""
    with host_on(database, tmp_path_factory.mktemp("nodes")) as c:
        sessions = prepare_database(c.host_config())
        states = [TaskState.ASSIGNING, TaskState.RUNNING, TaskState.PAUSED, TaskState.LOST]
        holding = [holding_row(i, states[i % 4]) for i in range(20)]
        done = [holding_row(20 + i, TaskState.COMPLETED) for i in range(5)]
        with sessions.begin() as s:
            s.execute(insert(Node), [node_row(i) for i in range(12)])
            s.execute(insert(Task), holding + done)
        yield c, sessions
        sessions.kw["bind"].dispose()


def old_nodes(sessions: sessionmaker[Session]) -> bytes:
    """The node list as the host built it before: entities, a validated view each."""
    with sessions() as s:
        held = holding_by_node(s)
        rows = s.scalars(select(Node).order_by(Node.name))
        return NODE_PAGE.dump_json([node_view(n, held.get(n.name, [])) for n in rows])


def listed_nodes(c: Cluster, sessions: sessionmaker[Session]) -> tuple[bytes, bytes]:
    """The host's answer and the old construction, read while the database held still."""
    for _ in range(20):
        before = old_nodes(sessions)
        got = answered_at(c, "/api/v1/nodes")
        if old_nodes(sessions) == before:
            return got, before
    raise AssertionError("the nodes kept changing while listed")


def answered_at(c: Cluster, path: str) -> bytes:
    reply = httpx.get(f"{c.url}{path}", headers={"Authorization": f"Bearer {c.token}"})
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/json"
    return reply.content


def test_the_node_list_answers_what_the_entities_views_serialise_to(
    nodes: tuple[Cluster, sessionmaker[Session]],
) -> None:
    c, sessions = nodes
    got, expected = listed_nodes(c, sessions)
    assert json.loads(got) == json.loads(expected)
    assert got == expected
    views = NODE_PAGE.validate_json(got)
    assert {v.status.value for v in views} == {"online", "offline", "draining"}
    assert any(v.held.gpu_ids for v in views) and any(v.held.pinned_cpus for v in views)
    assert any(v.running_tasks for v in views) and any(v.usage is None for v in views)
    assert any(v.inventory.gpus for v in views) and any(v.held.cores == 0 for v in views)


def test_the_node_list_follows_each_change_of_a_node_or_its_tasks(
    nodes: tuple[Cluster, sessionmaker[Session]],
) -> None:
    """Changes of every part a node's answer is made of show: made behind the host's back
    (by the test) within the second an answer is kept at most; made through the host at
    once."""
    c, sessions = nodes
    first, _ = listed_nodes(c, sessions)
    changes: list[Callable[[Session], object]] = [
        lambda s: s.execute(update(Node).where(Node.name == "node-00").values(usage=usage(8))),
        lambda s: s.execute(
            update(Node).where(Node.name == "node-04").values(inventory=inventory(7))
        ),
        lambda s: s.execute(update(Node).where(Node.name == "node-03").values(status="offline")),
        lambda s: s.execute(update(Task).where(Task.id == 2_000_001).values(state="completed")),
        lambda s: s.execute(insert(Task), [holding_row(40, TaskState.RUNNING)]),
        lambda s: s.execute(insert(Node), [node_row(12)]),
        lambda s: s.execute(delete(Node).where(Node.name == "node-05")),
    ]
    seen = [first]
    for change in changes:
        with sessions.begin() as s:
            change(s)
        deadline = time.monotonic() + 5
        while True:
            got, expected = listed_nodes(c, sessions)
            if got == expected:
                break
            assert got in seen, "an answer neither old nor right"
            assert time.monotonic() < deadline, "the change does not show"
            time.sleep(0.05)
        assert got not in seen, "the change shows"
        seen.append(got)
    drained = httpx.post(
        f"{c.url}/api/v1/nodes/node-00/drain", headers={"Authorization": f"Bearer {c.token}"}
    )
    assert drained.status_code == 200, drained.text
    got, expected = listed_nodes(c, sessions)
    assert got == expected
    assert json.loads(got)[0]["status"] == "draining"


@pytest.mark.parametrize("path", ["/api/v1/tasks", "/api/v1/nodes"])
def test_listings_go_gzipped_to_clients_that_accept_it(
    nodes: tuple[Cluster, sessionmaker[Session]], path: str
) -> None:
    c, _ = nodes
    url, auth = f"{c.url}{path}", {"Authorization": f"Bearer {c.token}"}
    plain = httpx.get(url, headers=auth | {"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    assert plain.headers["vary"] == "Accept-Encoding"
    packed = httpx.get(url, headers=auth | {"Accept-Encoding": "br, gzip"})
    assert packed.headers["content-encoding"] == "gzip"
    assert int(packed.headers["content-length"]) * 3 < len(plain.content)
    assert packed.content == plain.content  # httpx unpacked it: the same answer
    refused = httpx.get(url, headers=auth | {"Accept-Encoding": "gzip;q=0, *"})
    assert "content-encoding" not in refused.headers and refused.content == plain.content
