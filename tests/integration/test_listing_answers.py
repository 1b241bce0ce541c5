"""The task list's answer, read as plain rows and serialised once, is byte for byte what
the views of the tasks' ORM entities serialise to (as the host answered before), for
tasks of every state and shape, under every filter and page, for admins and users."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter
from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from kawa.core.task_states import TaskState
from kawa.host.app import prepare_database
from kawa.host.auth import Authenticator
from kawa.host.views import task_view
from kawa.protocol.tasks import TaskView
from kawa.store.models import Task
from tests.integration.cluster import Cluster

PAGE = TypeAdapter(list[TaskView])
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


@pytest.fixture(scope="module")
def listed(
    docker_available: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Cluster, sessionmaker[Session]]]:
    """A host (no runners) whose database holds 90 varied tasks."""
    from tests.conftest import BASE_IMAGE

    c = Cluster(tmp_path_factory.mktemp("listing"), BASE_IMAGE)
    try:
        c.start_host()
        sessions = prepare_database(c.host_config())
        with sessions.begin() as s:
            s.execute(insert(Task), [task_row(i) for i in range(90)])
        yield c, sessions
        sessions.kw["bind"].dispose()
    finally:
        c.close()


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
