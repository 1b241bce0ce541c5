"""Leadership with a lock that the test takes and breaks: the leader's work runs only
while the lock is held, stops at once when it is lost, and starts again when retaken."""

from __future__ import annotations

import asyncio

from kawa.host.leadership import Leadership
from tests.support import until


class FakeLock:
    def __init__(self) -> None:
        self.free = False
        self.lost = False
        self.held = False
        self.releases = 0

    async def try_acquire(self) -> bool:
        if self.free:
            self.held, self.free, self.lost = True, False, False
        return self.held

    async def still_held(self) -> bool:
        if self.lost:
            self.held = False
        return self.held

    async def release(self) -> None:
        self.held = False
        self.releases += 1

    def confirm(self, session: object) -> bool:
        return self.held


def test_without_a_lock_the_host_always_leads() -> None:
    leadership = Leadership(None)
    ran: list[bool] = []

    async def lead() -> None:
        ran.append(leadership.leading)

    assert leadership.leading
    asyncio.run(leadership.run(lead))
    assert ran == [True] and leadership.terms == 1


def test_leads_only_while_holding_the_lock_and_stands_by_when_it_is_lost() -> None:
    lock = FakeLock()
    leadership = Leadership(lock, retry=0.01, check=0.01)
    working = asyncio.Event()
    cancelled: list[int] = []

    async def lead() -> None:
        working.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(leadership.terms)
            working.clear()
            raise

    async def scenario() -> None:
        runner = asyncio.create_task(leadership.run(lead))
        await asyncio.sleep(0.05)
        assert not leadership.leading and not working.is_set()  # another host holds it
        lock.free = True
        await until(working.is_set, 2, "the work to start")
        assert leadership.leading and leadership.since is not None
        assert leadership.confirm(None)  # the fake asks no session
        lock.lost = True  # the lock's connection broke
        await until(lambda: not leadership.leading, 2, "standing by")
        assert cancelled == [1] and not working.is_set() and leadership.since is None
        assert not leadership.confirm(None)
        lock.free = True  # the lock is free again: lead again
        await until(working.is_set, 2, "a second term")
        assert leadership.terms == 2
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        assert cancelled == [1, 2] and lock.releases >= 1 and not lock.held

    asyncio.run(scenario())


def test_work_that_ends_gives_the_lock_back() -> None:
    lock = FakeLock()
    lock.free = True
    leadership = Leadership(lock, retry=0.01, check=0.01)
    terms: list[int] = []

    async def lead() -> None:
        terms.append(leadership.terms)
        raise RuntimeError("broken")

    async def scenario() -> None:
        runner = asyncio.create_task(leadership.run(lead))
        await until(lambda: terms == [1], 2, "the first term")
        await asyncio.sleep(0.05)
        assert not lock.held and not leadership.leading  # released for another host
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)

    asyncio.run(scenario())
