"""Write versions: per table, how many committed transactions of this process wrote it.

A reader that notes the versions of the tables an answer is made of *before* reading
them may reuse that answer for as long as the versions stay the same: a version moves
only after the writing transaction has committed, so an answer is never kept under a
version newer than what it shows. Writes are seen through the ORM session (flushed
entities and INSERT/UPDATE/DELETE statements executed on a session). Another process's
writes are not seen here: whoever learns of them calls :meth:`WriteVersions.bump`.

A write to a table that sets only columns named *quiet* for it (a node's last
heartbeat and usage, say) moves the table's quiet version instead, so a reader may
choose to tolerate those for a while."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction, sessionmaker
from sqlalchemy.sql.dml import Delete, Insert, Update

_PENDING = "kawa.written"
QUIET = {"nodes": frozenset({"last_heartbeat", "usage"})}
"""Per table, the columns whose writes move its quiet version only: what a runner's
heartbeat refreshes."""


class WriteVersions:
    """Counters per table name, moved after each commit that wrote the table."""

    def __init__(self, quiet: dict[str, frozenset[str]] | None = None) -> None:
        self.quiet = QUIET if quiet is None else quiet
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def of(self, *tables: str) -> tuple[int, ...]:
        """The versions of ``tables``, in order."""
        counts = self._counts
        return tuple(counts.get(t, 0) for t in tables)

    def bump(self, tables: Iterable[str]) -> None:
        """Move the version of each of ``tables`` (after they were written elsewhere)."""
        with self._lock:
            for table in set(tables):
                self._counts[table] = self._counts.get(table, 0) + 1

    def quiet_name(self, table: str) -> str:
        """The name under which writes of only quiet columns of ``table`` are counted."""
        return f"{table}:quiet"

    def _written(self, table: str, columns: Iterable[str] | None) -> str:
        """What a write of ``columns`` (None: unknown, or rows added or removed) of
        ``table`` moves."""
        quiet = self.quiet.get(table)
        if quiet and columns is not None:
            names = set(columns)
            if names and names <= quiet:
                return self.quiet_name(table)
        return table


_versions: weakref.WeakKeyDictionary[sessionmaker[Session], WriteVersions] = (
    weakref.WeakKeyDictionary()
)
_versions_lock = threading.Lock()


def write_versions(sessions: sessionmaker[Session]) -> WriteVersions:
    """The write versions of the sessions ``sessions`` makes (watched from the first
    call on)."""
    with _versions_lock:
        found = _versions.get(sessions)
        if found is None:
            found = _versions[sessions] = WriteVersions()
            _watch(sessions, found)
        return found


def _watch(sessions: sessionmaker[Session], versions: WriteVersions) -> None:
    def note(session: Session, table: str, columns: Iterable[str] | None) -> str:
        written = versions._written(table, columns)
        session.info.setdefault(_PENDING, set()).add(written)
        return written

    @event.listens_for(sessions, "after_flush")
    def flushed(session: Session, _flush: UOWTransaction) -> None:
        # Once a table is noted as written, its other rows change nothing: a flush of
        # thousands of rows looks at the columns of a row of a table with quiet
        # columns only until one of its rows wrote a column that is not quiet.
        noted: set[str] = set()
        for obj in (*session.new, *session.deleted):
            table = _table_of(obj)
            if table not in noted:
                noted.add(table)
                note(session, table, None)
        for obj in session.dirty:
            table = _table_of(obj)
            if table in noted:
                continue
            if table not in versions.quiet:
                noted.add(table)
                note(session, table, None)
                continue
            state = inspect(obj)
            changed = [a.key for a in state.attrs if a.history.has_changes()]
            if changed and note(session, table, changed) == table:
                noted.add(table)

    @event.listens_for(sessions, "do_orm_execute")
    def executed(state: ORMExecuteState) -> None:
        statement = state.statement
        if isinstance(statement, Insert | Update | Delete):
            table = getattr(statement.table, "name", None)
            if table is not None:
                columns = (
                    _set_columns(statement, state.parameters)
                    if isinstance(statement, Update)
                    else None
                )
                note(state.session, table, columns)

    # What a rolled-back transaction noted is kept and counted at the session's next
    # commit (one needless move at worst): a savepoint's rollback must not drop the
    # notes of the writes its enclosing transaction still commits.
    @event.listens_for(sessions, "after_commit")
    def committed(session: Session) -> None:
        written = session.info.pop(_PENDING, None)
        if written:
            versions.bump(written)


_TABLES: dict[type, str] = {}


def _table_of(obj: Any) -> str:
    cls = type(obj)
    name = _TABLES.get(cls)
    if name is None:
        name = _TABLES[cls] = str(inspect(cls).persist_selectable.name)
    return name


def _set_columns(statement: Update, parameters: Any) -> list[str] | None:
    """The columns an UPDATE sets, from its values or, for an update of many rows by
    primary key, from its rows' keys less the primary key (None when unknown)."""
    values: dict[Any, Any] = getattr(statement, "_values", None) or {}
    if values:
        names = [getattr(k, "key", k) for k in values]
    else:
        rows = parameters if isinstance(parameters, list) else [parameters or {}]
        keys = {k for row in rows if isinstance(row, dict) for k in row}
        primary = {c.key for c in getattr(statement.table, "primary_key", ())}
        names = sorted(keys - primary)
    if not names or not all(isinstance(n, str) for n in names):
        return None
    return names
