"""Writes of many rows in one statement, on a real database (SQLite, and PostgreSQL
where the rows travel as one JSON document): the same rows written and given back on
both."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from kawa.host.views import aware
from kawa.store.bulk_writes import BulkInsert, BulkUpdate
from kawa.store.database import make_engine, migrate, session_factory, sqlite_url
from kawa.store.models import Task, TaskTransition
from kawa.store.write_versions import write_versions
from tests.postgres_support import fresh_database

NOW = datetime(2026, 1, 1, tzinfo=UTC)
PLACE = BulkUpdate(Task, ("state", "node", "gpu_ids", "numa"), Task.__table__.c.state == "pending")
HISTORY = BulkInsert(TaskTransition)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    sqlite = nullcontext(sqlite_url(tmp_path / "kawa.db"))
    with fresh_database() if request.param == "postgresql" else sqlite as url:
        engine = make_engine(url)
        migrate(engine)
        yield session_factory(engine)
        engine.dispose()


def task(task_id: int, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict(
        id=task_id, batch_id=1, name=None, kind="command", state="pending",
        desired="running", owner="alice", command=["echo", f"{task_id}"], target=None,
        node=None, numa=None, gpu_ids=[], cpuset=[], cores=1, memory=None, gpus=0,
        env={"K": "v"}, mounts=[], container=None, image=None, native=False,
        privileged=False, workdir=None, network="bridge", timeout=None, priority=0,
        exit_code=None, error=None, waiting_reason="queued",
        created_at=NOW + timedelta(seconds=task_id), started_at=None, finished_at=None,
        ssh_key=None, batch_max_parallel=None,
    )  # fmt: skip
    return row | fields


TASKS = BulkInsert(Task)


def in_utc(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with its times in UTC (SQLite gives them back without a zone)."""
    return {k: aware(v) if isinstance(v, datetime) else v for k, v in row.items()}


def stored(s: Session) -> dict[int, dict[str, Any]]:
    rows = s.execute(select(*Task.__table__.columns).order_by(Task.id)).mappings()
    return {row["id"]: in_utc(dict(row)) for row in rows}


def test_inserted_rows_read_back_as_written(db: sessionmaker[Session]) -> None:
    rows = [task(1), task(2, env={}, timeout=2.5, memory=1 << 40, native=True, name="n")]
    with db.begin() as s:
        TASKS(s, rows)
        TASKS(s, [])  # nothing to write: no statement
    with db() as s:
        found = stored(s)
    assert found == {1: rows[0], 2: rows[1]}


def test_an_update_writes_only_rows_its_condition_holds_for_and_gives_them_back(
    db: sessionmaker[Session],
) -> None:
    with db.begin() as s:
        TASKS(s, [task(1), task(2), task(3, state="killed")])
    placed = [
        dict(id=1, state="assigning", node="n1", gpu_ids=[0, 1], numa=None),
        dict(id=3, state="assigning", node="n2", gpu_ids=[], numa=1),  # no longer pending
        dict(id=9, state="assigning", node="n2", gpu_ids=[], numa=0),  # no such task
    ]
    with db.begin() as s:
        written = PLACE(s, placed)
        HISTORY(s, [
            dict(task_id=i, at=NOW, source="pending", target="assigning", event="placed",
                 cause=f"scheduled on {row['node']}")
            for i, row in written.items()
        ])  # fmt: skip
    with db() as s:
        found = stored(s)
        history = s.scalars(select(TaskTransition)).all()
    assert list(written) == [1]
    assert in_utc(written[1]) == found[1]  # given back as stored
    assert (found[1]["state"], found[1]["node"], found[1]["gpu_ids"]) == ("assigning", "n1", [0, 1])
    assert found[1]["created_at"] == NOW + timedelta(seconds=1)
    assert found[2] == task(2)
    assert found[3] == task(3, state="killed")
    assert [(h.task_id, h.cause) for h in history] == [(1, "scheduled on n1")]


def test_both_writes_move_their_tables_write_versions(db: sessionmaker[Session]) -> None:
    versions = write_versions(db)
    before = versions.of("tasks", "task_transitions")
    with db.begin() as s:
        TASKS(s, [task(1)])
    with db.begin() as s:
        PLACE(s, [dict(id=1, state="assigning", node="n1", gpu_ids=[], numa=None)])
        HISTORY(s, [dict(task_id=1, at=NOW, source="pending", target="assigning",
                         event="placed", cause="c")])  # fmt: skip
    after = versions.of("tasks", "task_transitions")
    assert after == (before[0] + 2, before[1] + 1)


def test_a_value_too_long_for_its_column_is_refused_not_cut_on_postgresql() -> None:
    with fresh_database() as url:
        engine = make_engine(url)
        try:
            migrate(engine)
            db = session_factory(engine)
            with pytest.raises(DBAPIError, match="too long"), db.begin() as s:
                TASKS(s, [task(1, state="x" * 17)])  # the state column holds 16
            with db() as s:
                assert stored(s) == {}
        finally:
            engine.dispose()
