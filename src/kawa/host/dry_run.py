"""What a submission would do if it were made now: checked as a submission is, then
placed by the scheduler's own pass on a snapshot of the cluster with the pending queue
ahead of it. Nothing is stored."""

from __future__ import annotations

import time

from kawa.core.scheduler import BatchCap, QueuedTask, place
from kawa.host.auth import Principal
from kawa.host.queue_rows import batch_caps, pending_queue, queued_task
from kawa.host.scheduling import SchedulerLoop
from kawa.host.snapshots import node_snapshots
from kawa.host.task_service import TaskService
from kawa.protocol.task_queries import DryRunResponse, DryRunTask
from kawa.protocol.tasks import TaskSpec

_NEW_BATCH = -1
"""The would-be batch's id in the pass (real batch ids are never negative)."""
_FIRST_NEW_ID = 2**63 - 2**40
"""Ids the would-be tasks take in the pass: after every real task (ids are time-ordered,
and real ones stay far below this until the id clock runs out)."""


class DryRun:
    def __init__(self, tasks: TaskService, scheduler: SchedulerLoop) -> None:
        self.tasks = tasks
        self.scheduler = scheduler

    def run(self, spec: TaskSpec, who: Principal) -> DryRunResponse:
        """One entry per task ``spec`` would create: where it starts now, or why it waits
        (the same reasons a pending task shows). Refused as submitting would refuse it."""
        with self.tasks.ledger.sessions() as s:
            checked = self.tasks.prepare(s, spec, who)
            snapshots = node_snapshots(s)
            rows = pending_queue(s, self.scheduler.queue_scan)
            caps: dict[int, BatchCap] = dict(
                batch_caps(s, {r.batch_id: r.batch_max_parallel for r in rows})
            )
        now = time.time()
        queue = [queued_task(r) for r in rows]
        if checked.spec.max_parallel is not None:
            caps[_NEW_BATCH] = BatchCap(checked.spec.max_parallel)
        new = [
            QueuedTask(
                id=_FIRST_NEW_ID + n,
                request=checked.requests[member.target],
                target=member.target,
                priority=checked.spec.priority,
                enqueued_at=now,
                batch=_NEW_BATCH,
            )
            for n, member in enumerate(checked.members)
        ]
        result = place(
            snapshots,
            [*queue, *new],
            self.scheduler.strategy,
            now,
            self.scheduler.starvation_after,
            caps,
        )
        placed = {p.task_id: p.allocation.node for p in result.placements}
        answers = []
        for task in new:
            target = str(task.target) if task.target else None
            node = placed.get(task.id)
            if node is not None:
                answers.append(DryRunTask(
                    target=target, node=node, starts_now=True, message=f"starts now on {node}"
                ))  # fmt: skip
                continue
            reason = result.waiting.get(task.id, "not placed in this pass")
            answers.append(
                DryRunTask(
                    target=target,
                    node=task.target.node if task.target else None,
                    starts_now=False,
                    message=f"waits: {reason}",
                )
            )
        return DryRunResponse(tasks=answers)
