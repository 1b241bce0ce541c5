"""The leader lock on a real PostgreSQL: one holder at a time, released when its
connection closes or is cut by the server, and not held by anyone while unreachable;
and hosts starting together on one database migrate it one at a time."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from sqlalchemy import text

from kawa.store.advisory_lock import AdvisoryLock, is_postgresql, libpq_url
from kawa.store.database import make_engine, migrate
from tests.postgres_support import fresh_database


def test_url_forms() -> None:
    assert is_postgresql("postgresql://u@h/db") and is_postgresql("postgres://h/db")
    assert is_postgresql("postgresql+psycopg://h/db")
    assert not is_postgresql("sqlite:////var/lib/kawa/kawa.db")
    assert libpq_url("postgresql+psycopg://u:p@h:5/db") == "postgresql://u:p@h:5/db"
    assert libpq_url("postgres://h/db") == "postgresql://h/db"


def test_one_holder_at_a_time_and_the_next_one_takes_it_over() -> None:
    with fresh_database() as url:

        async def scenario() -> None:
            first, second = AdvisoryLock(url), AdvisoryLock(url)
            assert await first.try_acquire()
            assert await first.try_acquire()  # held already: still ours
            assert not await second.try_acquire()
            assert await first.still_held() and not second.held
            await first.release()
            assert await second.try_acquire()
            assert not await first.try_acquire()
            await second.release()

        asyncio.run(scenario())


def test_a_cut_connection_loses_the_lock_to_the_next_host() -> None:
    with fresh_database() as url:

        async def scenario() -> None:
            first, second = AdvisoryLock(url), AdvisoryLock(url)
            assert await first.try_acquire()
            with psycopg.connect(libpq_url(url), autocommit=True) as admin:
                cut = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND granted AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())"
                ).fetchall()
            assert cut == [(True,)]
            assert not await first.still_held() and not first.held
            assert await second.try_acquire()
            await second.release()

        asyncio.run(scenario())


def test_an_unreachable_database_is_no_lock() -> None:
    lock = AdvisoryLock("postgresql://postgres@127.0.0.1:1/none", timeout=2)
    assert not asyncio.run(lock.try_acquire())
    assert not lock.held


@pytest.mark.timeout(120)  # without the migration lock, they can deadlock
def test_hosts_starting_together_migrate_one_at_a_time() -> None:
    with fresh_database() as url:
        engines = [make_engine(url) for _ in range(3)]
        try:
            with ThreadPoolExecutor(3) as pool:
                list(pool.map(migrate, engines))
            with engines[0].connect() as conn:
                count = conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one()
            assert count == 1
        finally:
            for engine in engines:
                engine.dispose()
