"""Write versions and the answers kept under them, on a real database (SQLite, and
PostgreSQL when the suite has one): a version moves after each commit that wrote its
table and never before, and a kept answer is reused only while nothing it is made of
was written."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from kawa.host.answer_cache import AnswerCache
from kawa.store.database import make_engine, migrate, session_factory, sqlite_url
from kawa.store.models import ApiToken, Node
from kawa.store.write_versions import write_versions
from tests.postgres_support import fresh_database

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    if request.param == "sqlite":
        engine = make_engine(sqlite_url(tmp_path / "kawa.db"))
        migrate(engine)
        yield session_factory(engine)
        engine.dispose()
        return
    with fresh_database() as url:
        engine = make_engine(url)
        migrate(engine)
        yield session_factory(engine)
        engine.dispose()


def node(name: str) -> Node:
    return Node(
        name=name,
        url="http://127.0.0.1:1",
        status="online",
        draining=False,
        inventory={},
        usage=None,
        registered_at=NOW,
        last_heartbeat=NOW,
    )


def test_versions_move_after_commit_and_per_table(db: sessionmaker[Session]) -> None:
    v = write_versions(db)
    assert write_versions(db) is v
    before = v.of("nodes", "tasks")
    with db.begin() as s:
        s.add(node("a"))
        s.flush()
        assert v.of("nodes") == before[:1], "moved before the commit"
    assert v.of("nodes", "tasks") == (before[0] + 1, before[1])
    with db.begin() as s:  # a Core statement on the session counts too
        s.execute(update(Node).where(Node.name == "a").values(draining=True))
    assert v.of("nodes") == (before[0] + 2,)
    with db.begin() as s:
        s.execute(delete(Node).where(Node.name == "a"))
    assert v.of("nodes") == (before[0] + 3,)
    with db.begin() as s:  # other tables leave these alone
        s.execute(
            insert(ApiToken).values(user="x", token_hash="h" * 64, role="user", created_at=NOW)
        )
    assert v.of("nodes", "tasks") == (before[0] + 3, before[1])


def test_a_rolled_back_write_moves_nothing_then(db: sessionmaker[Session]) -> None:
    v = write_versions(db)
    before = v.of("nodes")
    s = db()
    s.begin()
    s.add(node("b"))
    s.flush()
    s.rollback()
    assert v.of("nodes") == before
    s.close()
    with db() as s:
        assert s.scalar(select(Node).where(Node.name == "b")) is None


def test_reads_and_unchanged_entities_move_nothing(db: sessionmaker[Session]) -> None:
    v = write_versions(db)
    with db.begin() as s:
        s.add(node("c"))
    before = v.of("nodes", "nodes:quiet")
    with db.begin() as s:
        found = s.get(Node, "c")
        assert found is not None
        found.status = "online"  # the value it had
        s.execute(select(Node))
    assert v.of("nodes", "nodes:quiet") == before


def test_heartbeat_columns_move_the_quiet_version_only(db: sessionmaker[Session]) -> None:
    v = write_versions(db)
    with db.begin() as s:
        s.add(node("d"))
    before = v.of("nodes", "nodes:quiet")
    with db.begin() as s:
        found = s.get(Node, "d")
        assert found is not None
        found.last_heartbeat = datetime.now(UTC)
        found.usage = {"cpu_percent": 3.0}
    assert v.of("nodes", "nodes:quiet") == (before[0], before[1] + 1)
    with db.begin() as s:
        s.execute(update(Node).where(Node.name == "d").values(last_heartbeat=datetime.now(UTC)))
    assert v.of("nodes", "nodes:quiet") == (before[0], before[1] + 2)
    with db.begin() as s:  # rows updated by primary key, as heartbeats in a group are
        s.execute(
            update(Node),
            [{"name": "d", "last_heartbeat": datetime.now(UTC), "usage": {"cpu_percent": 4.0}}],
        )
    assert v.of("nodes", "nodes:quiet") == (before[0], before[1] + 3)
    with db.begin() as s:
        s.execute(update(Node), [{"name": "d", "status": "online"}])
    assert v.of("nodes", "nodes:quiet") == (before[0] + 1, before[1] + 3)
    with db.begin() as s:  # with any other column it is a write of the table
        s.execute(
            update(Node)
            .where(Node.name == "d")
            .values(last_heartbeat=datetime.now(UTC), status="offline")
        )
    assert v.of("nodes", "nodes:quiet") == (before[0] + 2, before[1] + 3)


def names(db: sessionmaker[Session]) -> bytes:
    with db() as s:
        return ",".join(s.scalars(select(Node.name).order_by(Node.name))).encode()


def test_an_answer_is_kept_until_its_tables_are_written(db: sessionmaker[Session]) -> None:
    cache: AnswerCache[bytes] = AnswerCache(write_versions(db), ("nodes",), max_age=None)
    reads = 0

    def read() -> bytes:
        nonlocal reads
        reads += 1
        return names(db)

    assert cache.known("k") is None
    assert cache.answer("k", read) == b"" and reads == 1
    assert cache.answer("k", read) == b"" and reads == 1
    assert cache.known("k") == b""
    with db.begin() as s:
        s.add(node("e"))
    assert cache.known("k") is None
    assert cache.answer("k", read) == b"e" and reads == 2
    assert cache.answer("other", read) == b"e" and reads == 3  # each key its own


def counting_reader() -> tuple[list[int], Callable[[], bytes]]:
    reads: list[int] = []

    def read() -> bytes:
        reads.append(1)
        return f"read {len(reads)}".encode()

    return reads, read


def until_known(cache: AnswerCache[bytes], key: str, want: bytes) -> None:
    deadline = time.monotonic() + 5
    while cache.known(key) != want:
        assert time.monotonic() < deadline, f"{want!r} never answered"
        time.sleep(0.02)


def test_quiet_writes_are_tolerated_for_a_while(db: sessionmaker[Session]) -> None:
    """Past ``quiet_for`` the kept answer is still given while it is read again; before
    it, nothing is read. Times are bounded from below only (a slow machine cannot make
    this fail)."""
    with db.begin() as s:
        s.add(node("f"))
    cache: AnswerCache[bytes] = AnswerCache(
        write_versions(db), ("nodes",), quiet_for=1.0, max_age=None
    )
    reads, read = counting_reader()
    started = time.monotonic()  # before the answer is made: its age is at most this
    assert cache.answer("k", read) == b"read 1"
    with db.begin() as s:
        s.execute(update(Node).values(last_heartbeat=datetime.now(UTC)))
    assert cache.known("k") == b"read 1"  # still given, fresh or not
    if time.monotonic() - started < 1.0:  # asked within quiet_for: nothing read again
        assert len(reads) == 1
    until_known(cache, "k", b"read 2")  # then read again, in the background
    assert time.monotonic() - started >= 1.0
    time.sleep(0.3)  # no quiet write since "read 2": kept as it is, however long
    assert cache.known("k") == b"read 2" and len(reads) == 2


def test_no_answer_outlives_max_age_by_more_than_a_reading(db: sessionmaker[Session]) -> None:
    cache: AnswerCache[bytes] = AnswerCache(write_versions(db), ("nodes",), max_age=0.2)
    _reads, read = counting_reader()
    started = time.monotonic()
    assert cache.answer("k", read) == b"read 1"
    until_known(cache, "k", b"read 2")
    assert time.monotonic() - started >= 0.2


def test_a_refresh_never_makes_a_caller_wait(db: sessionmaker[Session]) -> None:
    cache: AnswerCache[bytes] = AnswerCache(write_versions(db), ("nodes",), max_age=0.05)
    release = threading.Event()
    first = [True]

    def read() -> bytes:
        if first[0]:
            first[0] = False
            return b"old"
        assert release.wait(10)
        return b"new"

    assert cache.answer("k", read) == b"old"
    time.sleep(0.1)
    assert cache.known("k") == b"old"  # the refresh blocks in read(); this does not
    assert cache.answer("k", read) == b"old"
    release.set()
    until_known(cache, "k", b"new")


def test_callers_asking_at_once_share_one_reading(db: sessionmaker[Session]) -> None:
    cache: AnswerCache[bytes] = AnswerCache(write_versions(db), ("nodes",), max_age=None)
    release = threading.Event()
    calls: list[int] = []

    def slow() -> bytes:
        calls.append(1)
        assert release.wait(10)
        return b"shared"

    got: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: got.append(cache.answer("k", slow))) for _ in range(8)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while not calls:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    release.set()
    for t in threads:
        t.join(10)
    assert got == [b"shared"] * 8
    assert len(calls) == 1


def test_a_write_during_a_read_is_not_hidden(db: sessionmaker[Session]) -> None:
    """Versions are noted before reading: a write committed while an answer is read
    makes the next caller read again (the answer may predate the write)."""
    cache: AnswerCache[bytes] = AnswerCache(write_versions(db), ("nodes",), max_age=None)

    def read_then_someone_writes() -> bytes:
        answer = names(db)
        with db.begin() as s:
            s.add(node("late"))
        return answer

    assert cache.answer("k", read_then_someone_writes) == b""
    assert cache.known("k") is None
    assert cache.answer("k", lambda: names(db)) == b"late"
