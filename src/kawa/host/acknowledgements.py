"""Runners' acknowledgements of orders, recorded in groups (:mod:`kawa.host.group_commit`):
those that arrive while one group is being recorded go together in the next
transaction."""

from __future__ import annotations

from collections.abc import Callable

from kawa.host.group_commit import GroupCommit

Record = Callable[[list[int]], set[int]]
"""Records that these tasks started, in one transaction (called in a worker thread);
returns the ids of those that had ended before."""


class Acknowledgements(GroupCommit[int, bool]):
    def __init__(self, record: Record) -> None:
        def commit(task_ids: list[int]) -> list[bool | Exception]:
            ended = record(task_ids)
            return [task_id in ended for task_id in task_ids]

        super().__init__(commit)

    async def acknowledge(self, task_id: int) -> bool:
        """Record that task ``task_id`` started; True when it had ended before."""
        return await self.add(task_id)
