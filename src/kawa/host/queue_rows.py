"""The queue's rows as a scheduling pass reads and marks them: pending tasks as light
rows in priority order (no ORM objects for tasks that keep waiting), the caps of the
batches among them, and their waiting reasons written back. The dry run reads the queue
the same way."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, TypeAlias

from sqlalchemy import ColumnElement, Select, and_, func, select, text, update
from sqlalchemy.orm import Session

from kawa.core.resources import ResourceRequest
from kawa.core.scheduler import BatchCap, QueuedTask
from kawa.core.targets import TargetSpec
from kawa.core.task_states import HOLDS_RESOURCES, TaskState
from kawa.host.views import aware
from kawa.store.models import ARRIVALS, Task


def batch_caps(s: Session, limits: Mapping[int, int | None]) -> dict[int, BatchCap]:
    """The caps of the capped batches among ``limits`` (batch id -> max parallel), each
    with how many of its tasks hold resources now."""
    capped = {batch: limit for batch, limit in limits.items() if limit is not None}
    if not capped:
        return {}
    held = [st.value for st in HOLDS_RESOURCES]
    counted = s.execute(
        select(Task.batch_id, func.count())
        .where(Task.batch_id.in_(list(capped)), Task.state.in_(held))
        .group_by(Task.batch_id)
    ).all()
    active = {batch: count for batch, count in counted}
    return {batch: BatchCap(limit, active.get(batch, 0)) for batch, limit in capped.items()}


Statement: TypeAlias = "Select[*tuple[Any, ...]]"
"""A select of any columns."""


_QUEUE_COLUMNS = (
    Task.id,
    Task.cores,
    Task.memory,
    Task.gpus,
    Task.target,
    Task.priority,
    Task.created_at,
    Task.waiting_reason,
    Task.batch_id,
    Task.batch_max_parallel,
)
_QUEUE_ORDER = (Task.priority.desc(), Task.id)


def _pending(new_only: bool) -> ColumnElement[bool]:
    pending = Task.state == TaskState.PENDING.value
    if new_only:
        # Nothing can be placed: only new arrivals need their waiting reason (the
        # condition as SQL text, which their partial index is written with).
        return and_(pending, text(ARRIVALS))
    return pending


@lru_cache(maxsize=16)
def _queue_statements(scan: int, new_only: bool) -> tuple[Statement, Statement]:
    """The pending tasks of no capped batch (at most ``scan``), and the capped batches
    with pending tasks: built once, as every pass asks them (a statement made anew is
    coerced and keyed again on every call)."""
    pending = _pending(new_only)
    free = (
        select(*_QUEUE_COLUMNS)
        .where(pending, Task.batch_max_parallel.is_(None))
        .order_by(*_QUEUE_ORDER)
        .limit(scan)
    )
    batches = (
        select(Task.batch_id, Task.batch_max_parallel)
        .where(pending, Task.batch_max_parallel.is_not(None))
        .distinct()
    )
    return free, batches


def pending_queue(s: Session, scan: int, new_only: bool = False) -> list[Any]:
    """Pending tasks (light rows) in priority order, at most ``scan`` of them. Of a
    capped batch only its first ``max_parallel`` pending tasks are read: the rest could not
    start in this pass anyway and would crowd other tasks out of the scan."""
    free_tasks, capped_batches = _queue_statements(scan, new_only)
    free = s.execute(free_tasks).all()
    capped: list[Any] = []
    for batch, cap in s.execute(capped_batches).all():  # few batches at a time have a cap
        capped += s.execute(
            select(*_QUEUE_COLUMNS)
            .where(_pending(new_only), Task.batch_id == batch)
            .order_by(*_QUEUE_ORDER)
            .limit(cap)
        ).all()
    if not capped:
        return list(free)
    both = sorted([*free, *capped], key=lambda r: (-r.priority, r.id))
    return both[:scan]


def queued_task(row: Any) -> QueuedTask:
    """The scheduler's view of one row of :func:`pending_queue`."""
    return QueuedTask(
        id=row.id,
        request=ResourceRequest(cores=row.cores, memory=row.memory, gpus=row.gpus),
        target=TargetSpec.parse(row.target) if row.target else None,
        priority=row.priority,
        enqueued_at=aware(row.created_at).timestamp(),
        batch=row.batch_id,
    )


def write_reasons(s: Session, reasons: Mapping[int, str]) -> list[dict[str, Any]]:
    """Set the waiting reasons of the tasks of ``reasons`` (id -> reason) that are still
    pending, with one UPDATE per distinct reason; the rows they now have (column ->
    value), returned by the same statements."""
    by_reason: dict[str, list[int]] = defaultdict(list)
    for task_id, reason in reasons.items():
        by_reason[reason].append(task_id)
    columns = Task.__table__.columns
    written: list[dict[str, Any]] = []
    for reason, ids in by_reason.items():
        result = s.execute(
            update(Task)
            .where(Task.id.in_(ids), Task.state == TaskState.PENDING.value)
            .values(waiting_reason=reason)
            .returning(*columns)
            .execution_options(synchronize_session=False)
        )
        written.extend(dict(row) for row in result.mappings())
    return written
