"""Runners' acknowledgements of orders, recorded in batches (:class:`Batches`): those
that arrive while one batch is being recorded wait and go together in the next
transaction. A lone one is recorded at once (no timer); a failed batch is recorded one
by one, so one task's failure is not the others'."""

from __future__ import annotations

from collections.abc import Callable

from kawa.host.batches import Batches

Record = Callable[[list[int]], set[int]]
"""Records that these tasks started, in one transaction (called in a worker thread);
returns the ids of those that had ended before."""


class Acknowledgements:
    def __init__(self, record: Record) -> None:
        def answers(task_ids: list[int]) -> list[bool]:
            ended = record(task_ids)
            return [task_id in ended for task_id in task_ids]

        self._batches: Batches[int, bool] = Batches(answers)

    async def acknowledge(self, task_id: int) -> bool:
        """Record that task ``task_id`` started; True when it had ended before."""
        return await self._batches.submit(task_id)

    async def stop(self) -> None:
        await self._batches.stop()
