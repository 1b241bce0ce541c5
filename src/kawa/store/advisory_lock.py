"""A PostgreSQL session-level advisory lock, held on a connection of its own.

The lock belongs to that connection: it is released when the connection closes,
including when the process holding it dies (the server sees the socket close).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg
from sqlalchemy import text
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

_HOLDS = text(
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND pid = :pid AND objsubid = 1 AND classid::bigint = :high AND objid::bigint = :low"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))"
)
"""Whether backend ``pid`` holds the bigint advisory lock split into ``high`` and ``low``."""

LEADER_LOCK_KEY = 0x6B617761_6C656164  # "kawalead": one key per database
"""The advisory lock key whose holder leads the hosts sharing a database."""


def is_postgresql(url: str) -> bool:
    """Whether the SQLAlchemy URL ``url`` names a PostgreSQL database."""
    scheme = url.split("://", 1)[0].lower()
    return scheme in ("postgres", "postgresql") or scheme.startswith("postgresql+")


def libpq_url(url: str) -> str:
    """``url`` as libpq takes it: the SQLAlchemy driver suffix (``+psycopg``) removed."""
    _, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a database URL: {url!r}")
    return "postgresql://" + rest if is_postgresql(url) else url


class AdvisoryLock:
    """``pg_try_advisory_lock(key)`` on a dedicated autocommit connection."""

    def __init__(self, url: str, key: int = LEADER_LOCK_KEY, timeout: float = 5.0) -> None:
        self.url = libpq_url(url)
        self.key = key
        self.timeout = timeout
        """Seconds a connect or a query may take before the lock counts as not held."""
        self._conn: psycopg.AsyncConnection[tuple[object, ...]] | None = None
        self._pid: int | None = None
        """The server process of the lock's connection while it is held."""

    @property
    def held(self) -> bool:
        return self._conn is not None

    async def try_acquire(self) -> bool:
        """Take the lock if no other session holds it; False when taken or unreachable."""
        if self._conn is not None:
            return True
        try:
            conn = await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, connect_timeout=max(1, int(self.timeout))
            )
        except (psycopg.Error, OSError) as exc:
            log.warning("cannot reach the database for the leader lock: %s", exc)
            return False
        try:
            got = await self._query(conn, "SELECT pg_try_advisory_lock(%s)")
        except (psycopg.Error, OSError, TimeoutError) as exc:
            log.warning("leader lock query failed: %s", exc)
            got = False
        if got:
            self._conn, self._pid = conn, conn.info.backend_pid
            return True
        await _close(conn)
        return False

    async def still_held(self) -> bool:
        """Whether the lock's connection still answers; when it does not, it is closed
        and the lock counts as lost (the server releases it with the session)."""
        conn = self._conn
        if conn is None:
            return False
        try:
            return bool(await self._query(conn, "SELECT %s::bigint IS NOT NULL"))
        except (psycopg.Error, OSError, TimeoutError) as exc:
            log.warning("the leader lock's connection failed: %s", exc)
            await self.release()
            return False

    def confirm(self, session: Session) -> bool:
        """Whether the lock is held, as the database sees it now, asked in ``session``'s
        transaction: a change committed right after a True answer was made by the
        holder (a fence against a holder whose session the server has already ended)."""
        if self._pid is None:
            return False
        key = self.key & 0xFFFF_FFFF_FFFF_FFFF
        found = session.execute(
            _HOLDS, {"pid": self._pid, "high": key >> 32, "low": key & 0xFFFF_FFFF}
        ).scalar()
        return bool(found)

    async def release(self) -> None:
        """Close the connection (releasing the lock with it)."""
        conn, self._conn, self._pid = self._conn, None, None
        if conn is not None:
            await _close(conn)

    async def _query(self, conn: psycopg.AsyncConnection[tuple[object, ...]], sql: str) -> object:
        async def run() -> object:
            cur = await conn.execute(sql, (self.key,))
            row = await cur.fetchone()
            return None if row is None else row[0]

        return await asyncio.wait_for(run(), self.timeout)


async def _close(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(conn.close(), 2.0)
