"""Retention of ended VPSs: past ``host.vps_retention`` their containers and snapshots go.

A VPS that is stopped (or ended otherwise) keeps its container on its node so that a
restart finds its files. After ``vps_retention`` seconds in that state the host removes
the container and the snapshots on the node, as ``kawa vps rm`` does, and the VPS is
recorded as ``removed``. A node that cannot be reached is tried again on a later pass.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from kawa.core.task_states import VPS_REMOVABLE, TaskKind
from kawa.host.errors import ServiceError
from kawa.host.ledger import Ledger
from kawa.host.task_service import TaskService
from kawa.host.views import aware
from kawa.store.models import Task

log = logging.getLogger(__name__)

LONGEST_PASS_INTERVAL = 60.0
"""Seconds between passes at most; a short retention is checked more often."""


class VpsRetention:
    def __init__(self, ledger: Ledger, tasks: TaskService, retention: float) -> None:
        self.ledger = ledger
        self.tasks = tasks
        self.retention = retention
        """Seconds; 0 keeps ended VPSs forever."""

    @property
    def interval(self) -> float:
        return min(LONGEST_PASS_INTERVAL, max(0.2, self.retention / 4))

    def due(self, now: datetime) -> list[int]:
        """Ended VPSs whose last ending is older than the retention."""
        cutoff = now - timedelta(seconds=self.retention)
        query = select(Task.id, Task.finished_at).where(
            Task.kind == TaskKind.VPS.value,
            Task.state.in_([s.value for s in VPS_REMOVABLE]),
            Task.finished_at.is_not(None),
        )
        with self.ledger.sessions() as s:
            rows = s.execute(query).all()
        return [r.id for r in rows if r.finished_at is not None and aware(r.finished_at) < cutoff]

    async def sweep(self) -> list[int]:
        """One pass; the ids of the VPSs removed."""
        removed = []
        for task_id in await asyncio.to_thread(self.due, datetime.now(UTC)):
            try:
                if await self.tasks.expire(task_id, self.retention):
                    removed.append(task_id)
            except ServiceError as exc:
                log.warning("retention: VPS %s kept for now: %s", task_id, exc.detail)
        return removed

    async def run(self) -> None:
        if self.retention <= 0:
            return  # kept forever
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sweep()
            except Exception:  # keep the loop alive; the error is logged
                log.exception("VPS retention pass failed")
