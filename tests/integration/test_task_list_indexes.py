"""Every filter of the task list, and the scheduler's queue, is served by an index in
the order asked (SQLite's query plan: no full scan, no sort of the matches)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, Select, inspect, select, text

from kawa.store.database import MIGRATIONS, make_engine, migrate
from kawa.store.models import ARRIVALS, Base, Task


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'kawa.db'}")
    migrate(engine)
    try:
        yield engine
    finally:
        engine.dispose()


def plan(engine: Engine, query: Select[Any]) -> str:
    sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        return " | ".join(row[-1] for row in conn.execute(text("EXPLAIN QUERY PLAN " + sql)))


PAGE = select(Task.id).order_by(Task.id.desc()).limit(200)


@pytest.mark.parametrize(
    ("name", "where"),
    [
        ("state", Task.state == "pending"),
        ("node", Task.node == "n1"),
        ("owner", Task.owner == "alice"),
        ("kind", Task.kind == "vps"),
        ("batch", Task.batch_id == 7),
    ],
)
def test_a_task_list_page_is_read_in_order_from_an_index(
    engine: Engine, name: str, where: object
) -> None:
    found = plan(engine, PAGE.where(where))  # type: ignore[arg-type]
    assert "USING" in found and "INDEX" in found, (name, found)
    assert "TEMP B-TREE" not in found, (name, found)


def test_the_scheduler_queue_is_read_in_priority_order_from_an_index(engine: Engine) -> None:
    queue = (
        select(Task.id)
        .where(Task.state == "pending", Task.batch_max_parallel.is_(None))
        .order_by(Task.priority.desc(), Task.id)
        .limit(1000)
    )
    found = plan(engine, queue)
    assert "ix_tasks_queue" in found and "TEMP B-TREE" not in found, found


def test_the_indexes_migration_goes_down_and_up_again(engine: Engine) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0007")
    assert "ix_tasks_state" in {i["name"] for i in inspect(engine).get_indexes("tasks")}
    migrate(engine)
    found = {i["name"] for i in inspect(engine).get_indexes("tasks")}
    wanted = {i.name for i in Base.metadata.tables["tasks"].indexes}
    assert wanted <= found, wanted - found


def test_the_queues_new_arrivals_are_read_from_their_partial_index(engine: Engine) -> None:
    """A pass that can place nothing reads only the tasks without a waiting reason yet:
    from their own index, not by walking every waiting task before them."""
    arrivals = (
        select(Task.id)
        .where(Task.state == "pending", text(ARRIVALS), Task.batch_max_parallel.is_(None))
        .order_by(Task.priority.desc(), Task.id)
        .limit(4000)
    )
    found = plan(engine, arrivals)
    assert "ix_tasks_arrivals" in found and "TEMP B-TREE" not in found, found
