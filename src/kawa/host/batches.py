"""Work recorded in batches: items that arrive while one batch is being recorded wait
and go together in the next call (one transaction). A lone item is recorded at once,
or after a set linger when its answer may wait (so that items spread out in time, such
as hundreds of nodes' heartbeats, still share a call); a batch that fails is recorded
again one by one, so one item's failure is not the others'."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batches(Generic[T, R]):
    """``record`` records a batch in one transaction (called in a worker thread) and
    returns each item's answer in order, or the error of an item refused on its own
    (the others stand)."""

    def __init__(
        self,
        record: Callable[[list[T]], Sequence[R | Exception]],
        most: int = 0,
        linger: float = 0.0,
    ):
        self._record = record
        self._most = most
        """At most this many items per call (0: no limit); the rest wait for the next."""
        self._linger = linger
        """Seconds a call waits after its first item arrived, for others to join it."""
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._first = 0.0
        """When the oldest waiting item arrived (monotonic clock)."""
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Record ``item`` with whatever else waits; its answer, or its error."""
        answer: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        if not self._waiting:
            self._first = time.monotonic()
        self._waiting.append((item, answer))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await answer

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)

    async def _drain(self) -> None:
        while self._waiting:
            rest = self._first + self._linger - time.monotonic()
            full = 0 < self._most <= len(self._waiting)
            if rest > 0 and not full:
                await asyncio.sleep(rest)
            cut = self._most or len(self._waiting)
            batch, self._waiting = self._waiting[:cut], self._waiting[cut:]
            self._first = time.monotonic()  # those left over wait from now on
            try:
                await self._answer(batch)
            except Exception:
                if len(batch) > 1:
                    for one in batch:
                        with contextlib.suppress(Exception):
                            await self._answer([one])

    async def _answer(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        """Record ``batch`` and answer each of it (a lone one with the error, when
        recording it failed)."""
        try:
            results = await asyncio.to_thread(self._record, [item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1 and not batch[0][1].done():
                batch[0][1].set_exception(exc)
            raise
        for (_, answer), result in zip(batch, results, strict=True):
            if answer.done():
                continue
            if isinstance(result, Exception):
                answer.set_exception(result)
            else:
                answer.set_result(result)
