"""The runner's local journal (SQLite, outside every container's reach): what it runs,
what it asked of each task, and which endings the host has not yet acknowledged."""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kawa.protocol.runner_api import ExitKind, RunTask

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY,
    order_json TEXT NOT NULL,
    container TEXT,
    state TEXT NOT NULL,
    kill_requested INTEGER NOT NULL DEFAULT 0,
    timed_out INTEGER NOT NULL DEFAULT 0,
    exit_kind TEXT,
    exit_code INTEGER,
    error TEXT,
    reported INTEGER NOT NULL DEFAULT 0,
    started_at TEXT NOT NULL,
    ended_at TEXT
);
CREATE TABLE IF NOT EXISTS environments (
    image TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    image_id TEXT NOT NULL,
    loads INTEGER NOT NULL DEFAULT 0,
    source TEXT,
    seconds REAL,
    loaded_at TEXT NOT NULL
);
"""

_ADDED_COLUMNS = {"native_pid": "INTEGER", "native_cgroup": "TEXT"}
"""Columns added after the first schema (``ALTER TABLE`` on older journals)."""


@dataclass(frozen=True)
class Entry:
    task_id: str
    order: RunTask
    container: str | None
    state: str
    kill_requested: bool
    timed_out: bool
    exit_kind: ExitKind | None
    exit_code: int | None
    error: str | None
    reported: bool
    ended_at: datetime | None


@dataclass(frozen=True)
class NativeRecord:
    """Where a native task runs: its wrapper's pid and its cgroup (relative path)."""

    pid: int | None
    cgroup: str | None
    started_at: datetime


class JournalClosed(RuntimeError):
    """The runner closed its journal (it is stopping); nothing more is recorded."""


class Journal:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._add_columns()
        self._lock = threading.Lock()
        self._closed = False

    def _add_columns(self) -> None:
        have = {str(r[1]) for r in self._db.execute("PRAGMA table_info(tasks)").fetchall()}
        for name, kind in _ADDED_COLUMNS.items():
            if name in have:
                continue
            try:
                self._db.execute(f"ALTER TABLE tasks ADD COLUMN {name} {kind}")
            except sqlite3.OperationalError as exc:  # another process added it meanwhile
                if "duplicate column" not in str(exc):
                    raise

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._db.close()

    def _exec(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        with self._lock:
            if self._closed:
                raise JournalClosed("the runner's journal is closed")
            return self._db.execute(sql, args).fetchall()

    def get_meta(self, key: str) -> str | None:
        rows = self._exec("SELECT value FROM meta WHERE key = ?", key)
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        self._exec("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", key, value)

    def begin(self, order: RunTask) -> bool:
        """Record a task about to start; False if the journal already has it."""
        try:
            self._exec(
                "INSERT INTO tasks(task_id, order_json, state, started_at) VALUES (?, ?, ?, ?)",
                order.task_id,
                order.model_dump_json(),
                "starting",
                _now(),
            )
        except sqlite3.IntegrityError:
            return False
        return True

    def set_container(self, task_id: str, container: str) -> None:
        self._exec("UPDATE tasks SET container = ? WHERE task_id = ?", container, task_id)

    def set_native(self, task_id: str, cgroup: str, pid: int | None = None) -> None:
        self._exec(
            "UPDATE tasks SET native_cgroup = ?, native_pid = ? WHERE task_id = ?",
            cgroup,
            pid,
            task_id,
        )

    def native(self, task_id: str) -> NativeRecord | None:
        rows = self._exec(
            "SELECT native_pid, native_cgroup, started_at FROM tasks WHERE task_id = ?", task_id
        )
        if not rows:
            return None
        pid, cgroup, started = rows[0]
        return NativeRecord(
            pid=None if pid is None else int(str(pid)),
            cgroup=None if cgroup is None else str(cgroup),
            started_at=datetime.fromisoformat(str(started)),
        )

    def set_state(self, task_id: str, state: str) -> None:
        self._exec(
            "UPDATE tasks SET state = ? WHERE task_id = ? AND state != 'ended'", state, task_id
        )

    def mark(self, task_id: str, *, kill: bool = False, timeout: bool = False) -> None:
        if kill:
            self._exec("UPDATE tasks SET kill_requested = 1 WHERE task_id = ?", task_id)
        if timeout:
            self._exec("UPDATE tasks SET timed_out = 1 WHERE task_id = ?", task_id)

    def end(self, task_id: str, kind: ExitKind, code: int | None, error: str | None) -> bool:
        """Record the ending once; False if it was already recorded."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE tasks SET state='ended', exit_kind=?, exit_code=?, error=?, ended_at=?"
                " WHERE task_id = ? AND state != 'ended'",
                (kind.value, code, error, _now(), task_id),
            )
            return cur.rowcount == 1

    def forget(self, task_id: str) -> None:
        """Drop a task that never started (so a retried dispatch can start it)."""
        self._exec("DELETE FROM tasks WHERE task_id = ?", task_id)

    def acknowledged(self, task_id: str) -> None:
        self._exec("UPDATE tasks SET reported = 1 WHERE task_id = ?", task_id)

    def get(self, task_id: str) -> Entry | None:
        rows = self._select("WHERE task_id = ?", task_id)
        return rows[0] if rows else None

    def live(self) -> list[Entry]:
        return self._select("WHERE state != 'ended'")

    def unreported(self) -> list[Entry]:
        return self._select("WHERE state = 'ended' AND reported = 0 ORDER BY ended_at")

    def forget_before(self, cutoff: datetime) -> None:
        self._exec(
            "DELETE FROM tasks WHERE state = 'ended' AND reported = 1 AND ended_at < ?",
            cutoff.isoformat(),
        )

    # -- environments this runner has loaded ------------------------------------------
    def loaded_environment(self, image: str) -> tuple[str, str] | None:
        """(digest, image id) of the tarball last loaded as ``image``."""
        rows = self._exec("SELECT digest, image_id FROM environments WHERE image = ?", image)
        return (str(rows[0][0]), str(rows[0][1])) if rows else None

    def record_load(
        self, image: str, digest: str, image_id: str, source: str, seconds: float
    ) -> None:
        self._exec(
            "INSERT INTO environments(image, digest, image_id, loads, source, seconds, loaded_at)"
            " VALUES (?, ?, ?, 1, ?, ?, ?) ON CONFLICT(image) DO UPDATE SET digest = ?,"
            " image_id = ?, loads = loads + 1, source = ?, seconds = ?, loaded_at = ?",
            *(image, digest, image_id, source, seconds, _now()),
            *(digest, image_id, source, seconds, _now()),
        )

    def _select(self, where: str, *args: object) -> list[Entry]:
        rows = self._exec(
            "SELECT task_id, order_json, container, state, kill_requested, timed_out,"
            f" exit_kind, exit_code, error, reported, ended_at FROM tasks {where}",
            *args,
        )
        return [
            Entry(
                task_id=str(r[0]),
                order=RunTask.model_validate(json.loads(str(r[1]))),
                container=r[2] if r[2] is None else str(r[2]),
                state=str(r[3]),
                kill_requested=bool(r[4]),
                timed_out=bool(r[5]),
                exit_kind=ExitKind(str(r[6])) if r[6] else None,
                exit_code=None if r[7] is None else int(str(r[7])),
                error=None if r[8] is None else str(r[8]),
                reported=bool(r[9]),
                ended_at=datetime.fromisoformat(str(r[10])) if r[10] else None,
            )
            for r in rows
        ]


def _now() -> str:
    return datetime.now(UTC).isoformat()
