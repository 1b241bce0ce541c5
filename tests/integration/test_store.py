"""The host's database: SQLite in WAL mode by default, Alembic migrations, PostgreSQL by URL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, delete, inspect, select, text

from kawa.core.ids import IdGenerator
from kawa.host.app import prepare_database
from kawa.settings import HostConfig
from kawa.store.database import MIGRATIONS, make_engine, migrate, session_factory
from kawa.store.models import Base, ClusterMeta, Task, TaskTransition

POSTGRES_URL = os.environ.get("KAWA_TEST_POSTGRES_URL")


@contextmanager
def engine_for(url: str) -> Iterator[Engine]:
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def config(tmp_path: Path) -> HostConfig:
    return HostConfig(data_dir=tmp_path / "data", cluster_secret="x")


def prepare(cfg: HostConfig) -> str:
    """Run prepare_database and return the cluster id, disposing of its engine."""
    sessions = prepare_database(cfg)
    try:
        with sessions() as s:
            meta = s.get(ClusterMeta, "cluster_id")
            assert meta is not None
            return meta.value
    finally:
        sessions.kw["bind"].dispose()


def head_revision() -> str:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def schema(engine: Engine) -> dict[str, list[str]]:
    insp = inspect(engine)
    return {t: sorted(c["name"] for c in insp.get_columns(t)) for t in insp.get_table_names()}


def test_prepare_database_migrates_a_new_sqlite_file(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    db = cfg.data_dir / "kawa.db"
    assert not db.exists()
    cluster_id = prepare(cfg)
    assert db.is_file()
    assert len(cluster_id) >= 8
    with engine_for(cfg.database()) as engine:
        tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables, set(Base.metadata.tables) - tables
    assert "alembic_version" in tables


def test_sqlite_connections_use_wal(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    prepare(cfg)
    with engine_for(cfg.database()) as engine, engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 5000


def test_migrating_twice_is_a_no_op(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    first = prepare(cfg)
    with engine_for(cfg.database()) as engine:
        before = schema(engine)
        with engine.connect() as conn:
            versions_before = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    second = prepare(cfg)
    with engine_for(cfg.database()) as engine:
        migrate(engine)  # and once more directly
        assert schema(engine) == before
        with engine.connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
            metas = conn.execute(text("SELECT count(*) FROM cluster_meta")).scalar()
    assert second == first, "the cluster id survives a restart"
    assert versions == versions_before and len(versions) == 1
    assert metas == 1


def test_recorded_revision_is_the_alembic_head(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    prepare(cfg)
    with engine_for(cfg.database()) as engine, engine.connect() as conn:
        recorded = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    assert recorded == head_revision()


def test_models_match_the_migrated_schema(tmp_path: Path) -> None:
    """Every model column exists in the migrated database (a missing migration shows here)."""
    cfg = config(tmp_path)
    prepare(cfg)
    with engine_for(cfg.database()) as engine:
        found = schema(engine)
    for name, table in Base.metadata.tables.items():
        assert name in found, f"table {name} missing after migration"
        assert sorted(c.name for c in table.columns) == found[name], name


def test_postgresql_url_builds_a_psycopg_engine_without_connecting() -> None:
    for url in ("postgresql://u:p@h/db", "postgres://u:p@h/db"):
        engine = make_engine(url)
        try:
            assert engine.dialect.name == "postgresql"
            assert engine.dialect.driver == "psycopg"
            assert engine.url.host == "h" and engine.url.database == "db"
            assert engine.url.username == "u"
            assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]  # QueuePool's
        finally:
            engine.dispose()


def test_sqlite_url_from_config(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    assert cfg.database() == f"sqlite:///{cfg.data_dir / 'kawa.db'}"
    pg = HostConfig(data_dir=tmp_path, cluster_secret="x", database_url="postgresql://u:p@h/db")
    assert pg.database() == "postgresql://u:p@h/db"


def _task(task_id: int) -> Task:
    now = datetime.now(UTC)
    return Task(
        id=task_id,
        batch_id=task_id,
        name="store-test",
        kind="command",
        state="pending",
        desired="run",
        owner="tester",
        command=["echo", "hi"],
        target="node1:0::1",
        node=None,
        numa=None,
        gpu_ids=[],
        cpuset=[],
        cores=2,
        memory=4_000_000_000,
        gpus=0,
        env={"A": "1"},
        mounts=[],
        container="default",
        image="kawa/base:bookworm",
        native=False,
        privileged=False,
        workdir="/tmp",
        network="host",
        timeout=5400.0,
        priority=3,
        created_at=now,
        waiting_reason="queued",
    )


def test_task_round_trip_on_sqlite(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    sessions = prepare_database(cfg)
    try:
        task_id = IdGenerator().next()
        assert task_id > 2**31, "ids are 64-bit"
        with sessions.begin() as s:
            s.add(_task(task_id))
            s.add(
                TaskTransition(
                    task_id=task_id,
                    at=datetime.now(UTC),
                    source=None,
                    target="pending",
                    event="submitted",
                    cause="test",
                )
            )
        with sessions() as s:
            row = s.get(Task, task_id)
            assert row is not None
            assert (row.command, row.env, row.memory, row.target) == (
                ["echo", "hi"],
                {"A": "1"},
                4_000_000_000,
                "node1:0::1",
            )
    finally:
        sessions.kw["bind"].dispose()


@pytest.mark.skipif(not POSTGRES_URL, reason="set KAWA_TEST_POSTGRES_URL to test PostgreSQL")
def test_postgresql_migrate_and_round_trip() -> None:
    assert POSTGRES_URL is not None
    with engine_for(POSTGRES_URL) as engine:
        assert engine.dialect.driver == "psycopg"
        migrate(engine)
        migrate(engine)  # idempotent there too
        with engine.connect() as conn:
            recorded = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        assert recorded == head_revision()
        sessions = session_factory(engine)
        task_id = IdGenerator().next()
        try:
            with sessions.begin() as s:
                s.add(_task(task_id))
            with sessions() as s:
                row = s.scalar(select(Task).where(Task.id == task_id))
                assert row is not None
                assert row.command == ["echo", "hi"] and row.memory == 4_000_000_000
                assert row.env == {"A": "1"} and row.timeout == 5400.0
        finally:
            with sessions.begin() as s:
                s.execute(delete(Task).where(Task.id == task_id))
