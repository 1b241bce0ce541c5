"""Group commit: items that arrive while a group is being committed wait and go together
in the next call, one transaction for all. A lone item goes at once (no timer); a group
whose call fails is committed again item by item, so one item's failure is not the
others'."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Commit = Callable[[list[T]], Sequence[R | Exception]]
"""Commits a group (called in a worker thread) and answers each item in order: a result,
or the exception that item alone is refused with (its neighbours are not)."""


class GroupCommit(Generic[T, R]):
    def __init__(self, commit: Commit[T, R]) -> None:
        self._commit = commit
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._worker: asyncio.Task[None] | None = None

    async def add(self, item: T) -> R:
        """Commit ``item`` with whatever else is waiting; its answer, or its error."""
        answer: asyncio.Future[R] = asyncio.get_running_loop().create_future()
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
            group, self._waiting = self._waiting, []
            try:
                await self._answer(group)
            except Exception:
                if len(group) > 1:
                    for one in group:
                        with contextlib.suppress(Exception):
                            await self._answer([one])

    async def _answer(self, group: list[tuple[T, asyncio.Future[R]]]) -> None:
        """Commit ``group`` and answer each of it (a lone one with the error, when the
        call failed)."""
        try:
            answers = await asyncio.to_thread(self._commit, [item for item, _ in group])
        except Exception as exc:
            if len(group) == 1 and not group[0][1].done():
                group[0][1].set_exception(exc)
            raise
        for (_, future), answer in zip(group, answers, strict=True):
            if future.done():  # its caller went away
                continue
            if isinstance(answer, Exception):
                future.set_exception(answer)
            else:
                future.set_result(answer)
