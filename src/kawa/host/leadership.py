"""Which host leads: the one holding the database's leader lock runs the leader's work
(scheduling, dispatch, liveness, retention); the others serve the API and stand by.

With no lock (SQLite: one host) the host always leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


class Lock(Protocol):
    """A lock held by this process until released or lost (see ``AdvisoryLock``)."""

    async def try_acquire(self) -> bool: ...

    async def still_held(self) -> bool: ...

    async def release(self) -> None: ...

    def confirm(self, session: Session) -> bool: ...


class Leadership:
    """Runs ``lead()`` only while this process holds ``lock``: tries to take it every
    ``retry`` seconds, checks it every ``check`` seconds while leading, and cancels
    ``lead()`` at once when it is lost, then stands by again."""

    def __init__(self, lock: Lock | None, retry: float = 1.0, check: float = 1.0) -> None:
        self.lock = lock
        self.retry = retry
        self.check = check
        self.leading = lock is None
        self.since: float | None = None
        """When (``time.time()``) this process began to lead; None while standing by."""
        self.terms = 0
        """How many times this process has begun to lead."""

    def confirm(self, session: Session) -> bool:
        """Whether this process holds the lock now, asked in ``session``'s transaction
        (always with no lock): the leader's writes check it before they commit."""
        return self.lock is None or self.lock.confirm(session)

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Lead whenever the lock is held, until cancelled."""
        if self.lock is None:
            self._begin()
            await lead()
            return
        try:
            while True:
                if not await self.lock.try_acquire():
                    await asyncio.sleep(self.retry)
                    continue
                self._begin()
                log.info("this host leads (it holds the leader lock)")
                try:
                    await self._lead_while_held(lead)
                finally:
                    self._end()
                log.warning("this host lost the leader lock: standing by")
                await asyncio.sleep(self.retry)
        finally:
            await self.lock.release()

    async def _lead_while_held(self, lead: Callable[[], Awaitable[None]]) -> None:
        assert self.lock is not None
        work = asyncio.ensure_future(lead())
        try:
            while True:
                done, _ = await asyncio.wait({work}, timeout=self.check)
                if done:
                    if not work.cancelled() and work.exception() is not None:
                        log.error("the leader's work failed", exc_info=work.exception())
                    await self.lock.release()  # let another host lead
                    return
                if not await self.lock.still_held():
                    return
        finally:
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await work

    def _begin(self) -> None:
        self.leading = True
        self.since = time.time()
        self.terms += 1

    def _end(self) -> None:
        self.leading = False
        self.since = None
