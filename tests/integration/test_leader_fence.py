"""Two hosts' services on one real PostgreSQL database, in this process: a host whose
lock the server has taken away cannot commit a scheduling pass, even before it has
noticed; the host that takes the lock next places the tasks. On SQLite a host leads
alone, with nothing to fence or relay."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.orm import Session, sessionmaker

from kawa.host.app import Host, prepare_database
from kawa.host.auth import Principal
from kawa.host.scheduling import NotLeading
from kawa.protocol.nodes import NodeInventory, NodeRegistration
from kawa.protocol.tasks import TaskSpec
from kawa.settings import HostConfig
from kawa.store.advisory_lock import AdvisoryLock, libpq_url
from tests.postgres_support import fresh_database
from tests.support import eventually

ADMIN = Principal("admin", "admin")


def test_a_host_that_lost_the_lock_commits_no_placement(tmp_path: Path) -> None:
    with fresh_database() as url:
        config = HostConfig(data_dir=tmp_path, cluster_secret="s", database_url=url)
        sessions = prepare_database(config)
        try:
            asyncio.run(_scenario(config, sessions, url))
        finally:
            sessions.kw["bind"].dispose()


async def _scenario(config: HostConfig, sessions: sessionmaker[Session], url: str) -> None:
    old, new = Host(config, sessions), Host(config, sessions)
    old_lock, new_lock = old.leadership.lock, new.leadership.lock
    assert isinstance(old_lock, AdvisoryLock) and isinstance(new_lock, AdvisoryLock)
    inventory = NodeInventory(cores=8, memory=2**33)
    old.nodes.register(NodeRegistration(name="n1", url="http://127.0.0.1:9", inventory=inventory))
    spec = TaskSpec(command=["true"], image="img")
    try:
        with sessions() as s:
            assert not old.scheduler.fence(s)  # no lock yet
        assert await old_lock.try_acquire() and not await new_lock.try_acquire()
        [first] = old.tasks.submit(spec, ADMIN).tasks
        assert [d.order.task_id for d in old.scheduler.schedule_once()] == [first.id]

        [second] = old.tasks.submit(spec, ADMIN).tasks
        with psycopg.connect(libpq_url(url), autocommit=True) as admin:  # the server ends it
            admin.execute("SELECT pg_terminate_backend(%s)", (old_lock._pid,))
            gone = "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = %s)"
            eventually(lambda: admin.execute(gone, (old_lock._pid,)).fetchone() == (True,), 10)
        assert old_lock.held  # it has not checked its connection yet
        with pytest.raises(NotLeading):
            old.scheduler.schedule_once()
        assert old.tasks.get(second.id, ADMIN).state.value == "pending"  # rolled back

        assert await new_lock.try_acquire()
        assert [d.order.task_id for d in new.scheduler.schedule_once()] == [second.id]
        assert not await old_lock.still_held()
    finally:
        await old_lock.release()
        await new_lock.release()


def test_a_host_on_sqlite_leads_alone_and_relays_nothing(tmp_path: Path) -> None:
    config = HostConfig(data_dir=tmp_path, cluster_secret="s")
    host = Host(config, prepare_database(config))
    assert host.leading and host.leadership.lock is None and host.relay is None
    with host.sessions() as s:
        assert host.scheduler.fence(s)
