"""Pages of the task list as JSON: the query of its filters, and a page read as plain
rows (no ORM entities). Each task's part of the answer is validated and serialised
once, in pydantic's core, and kept in memory with the stored row it was made from:
while the row reads the same, the part is reused (a changed row makes a new one)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import Select, String, cast, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from kawa.core.task_states import TaskKind, TaskState
from kawa.host.errors import BadRequest
from kawa.host.views import aware
from kawa.protocol.tasks import TaskView
from kawa.store.models import Task

TASK_VIEW = TypeAdapter(TaskView)
TASK_VIEWS = TypeAdapter(list[TaskView])
FIELDS = tuple(name for name in TaskView.model_fields if name != "history")
"""The view's fields that are the task's columns of the same name (a listing carries no
history)."""
_JSON = frozenset(("command", "gpu_ids", "cpuset", "env", "mounts"))
COLUMNS = tuple(
    cast(Task.__table__.c[name], String) if name in _JSON else Task.__table__.c[name]
    for name in FIELDS
)
"""What a page reads of each task: JSON columns as their stored text."""
_ID, _BATCH = FIELDS.index("id"), FIELDS.index("batch_id")
_TEXTS = tuple(FIELDS.index(name) for name in sorted(_JSON))
_TIMES = tuple(FIELDS.index(name) for name in ("created_at", "started_at", "finished_at"))
KEPT_PARTS = 5000
"""Serialised tasks kept at most (about 2 KiB each with its row for a short command;
the cache starts over when full)."""


@dataclass(frozen=True)
class TaskFilter:
    """What a listing asks for; everything given must match."""

    states: Sequence[str] = ()
    node: str | None = None
    batch: str | None = None
    kind: str | None = None
    limit: int = 200
    owner: str | None = None
    text: str | None = None
    """The name or command contains it, any case."""
    before: int | None = None
    """Only ids below it: the next page's cursor."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "states", tuple(self.states))  # hashable: a cache key

    def check(self) -> None:
        """BadRequest for an unknown state or kind, or a batch id that is not a number."""
        bad = [x for x in self.states if x not in TaskState.__members__.values()]
        if bad:
            raise BadRequest(
                f"unknown state {bad[0]!r}; states: " + ", ".join(s.value for s in TaskState)
            )
        if self.kind is not None and self.kind not in TaskKind.__members__.values():
            raise BadRequest(f"unknown kind {self.kind!r}; kinds: command, vps")
        if self.batch and not self.batch.isdigit():
            raise BadRequest(f"bad batch id {self.batch!r}")

    def query(self, owner: str | None) -> Select[Any]:
        """The page's rows, newest first; ``owner`` (a non-admin caller) narrows it further."""
        self.check()
        query = select(*COLUMNS).order_by(Task.id.desc()).limit(max(1, min(self.limit, 10_000)))
        if owner is not None:
            query = query.where(Task.owner == owner)
        if self.owner is not None:
            query = query.where(Task.owner == self.owner)
        if self.text:
            query = query.where(_contains(self.text))
        if self.before is not None:
            query = query.where(Task.id < self.before)
        if self.states:
            query = query.where(Task.state.in_(list(self.states)))
        if self.node:
            query = query.where(Task.node == self.node)
        if self.kind:
            query = query.where(Task.kind == self.kind)
        if self.batch:
            query = query.where(Task.batch_id == int(self.batch))
        return query


class TaskParts:
    """Each listed task's serialised view, kept with the stored row it was made from."""

    def __init__(self, limit: int = KEPT_PARTS) -> None:
        self.limit = limit
        self._parts: dict[int, tuple[tuple[Any, ...], bytes]] = {}

    def page(self, s: Session, query: Select[Any]) -> bytes:
        """The JSON list of the ``TaskView`` of each row of ``query`` (made by
        :meth:`TaskFilter.query`)."""
        rows = [tuple(r) for r in s.execute(query)]
        parts: list[bytes | None] = []
        missing: list[tuple[Any, ...]] = []
        for row in rows:
            known = self._parts.get(row[_ID])
            if known is not None and known[0] == row:
                parts.append(known[1])
            else:
                parts.append(None)
                missing.append(row)
        made = iter(self._make(missing))
        return b"[" + b",".join(p if p is not None else next(made) for p in parts) + b"]"

    def _make(self, rows: list[tuple[Any, ...]]) -> list[bytes]:
        """The rows' views, validated together, serialised and kept one by one (unless
        more than the limit at once)."""
        if not rows:
            return []
        views = TASK_VIEWS.validate_python([_fields(r) for r in rows])
        made = [TASK_VIEW.dump_json(v) for v in views]
        if len(rows) > self.limit:
            return made
        if len(self._parts) + len(rows) > self.limit:
            self._parts = {}
        for row, part in zip(rows, made, strict=True):
            self._parts[row[_ID]] = (row, part)
        return made


def _fields(row: tuple[Any, ...]) -> dict[str, Any]:
    """One stored row as the view's fields: ids as text, JSON decoded, times in UTC."""
    values = list(row)
    values[_ID], values[_BATCH] = str(values[_ID]), str(values[_BATCH])
    for i in _TEXTS:
        values[i] = json.loads(values[i])
    for i in _TIMES:
        values[i] = aware(values[i])
    return dict(zip(FIELDS, values, strict=True))


def _contains(text: str) -> ColumnElement[bool]:
    """Name or command contains ``text``, any case. A command is stored as JSON, so
    ``text`` is looked for as JSON writes it (quotes, backslashes, non-ASCII escaped)."""

    def pattern(fragment: str) -> str:
        escaped = fragment.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return f"%{escaped}%"

    in_json = json.dumps(text)[1:-1]
    return or_(
        Task.name.ilike(pattern(text), escape="\\"),
        cast(Task.command, String).ilike(pattern(in_json), escape="\\"),
    )
