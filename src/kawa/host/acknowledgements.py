"""Runners' acknowledgements of orders, recorded in batches: those that arrive while one
batch is being recorded wait and go together in the next transaction. A lone one is
recorded at once (no timer); a failed batch is recorded one by one, so one task's
failure is not the others'."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

Record = Callable[[list[int]], set[int]]
"""Records that these tasks started, in one transaction (called in a worker thread);
returns the ids of those that had ended before."""


class Acknowledgements:
    def __init__(self, record: Record) -> None:
        self._record = record
        self._waiting: list[tuple[int, asyncio.Future[bool]]] = []
        self._worker: asyncio.Task[None] | None = None

    async def acknowledge(self, task_id: int) -> bool:
        """Record that task ``task_id`` started; True when it had ended before."""
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((task_id, answer))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await answer

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)

    async def _drain(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                await self._answer(batch)
            except Exception:
                if len(batch) > 1:
                    for one in batch:
                        with contextlib.suppress(Exception):
                            await self._answer([one])

    async def _answer(self, batch: list[tuple[int, asyncio.Future[bool]]]) -> None:
        """Record ``batch`` and answer each of it (a lone one with the error, when
        recording it failed)."""
        try:
            ended = await asyncio.to_thread(self._record, [t for t, _ in batch])
        except Exception as exc:
            if len(batch) == 1 and not batch[0][1].done():
                batch[0][1].set_exception(exc)
            raise
        for task_id, answer in batch:
            if not answer.done():
                answer.set_result(task_id in ended)
