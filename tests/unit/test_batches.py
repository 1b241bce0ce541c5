"""Work recorded in batches: an item refused on its own fails alone, a batch holds at
most its limit, and what waits goes in the next call."""

from __future__ import annotations

import asyncio
import time

import pytest

from kawa.host.batches import Batches


class Recorder:
    """Answers each item doubled; refuses odd items on their own (the others stand)."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    def __call__(self, items: list[int]) -> list[int | Exception]:
        self.calls.append(list(items))
        return [ValueError(f"{i} is odd") if i % 2 else i * 2 for i in items]


def test_an_item_refused_on_its_own_fails_alone_and_the_batch_stands() -> None:
    record = Recorder()

    async def main() -> list[int | BaseException]:
        batches: Batches[int, int] = Batches(record)
        return list(
            await asyncio.gather(*(batches.submit(i) for i in (2, 3, 4)), return_exceptions=True)
        )

    two, three, four = asyncio.run(main())
    assert (two, four) == (4, 8)
    assert isinstance(three, ValueError) and "3 is odd" in str(three)
    assert record.calls == [[2, 3, 4]], "one call: not retried one by one"


@pytest.mark.parametrize(("most", "calls"), [(2, [[0, 2], [4, 6], [8]]), (0, [[0, 2, 4, 6, 8]])])
def test_a_batch_holds_at_most_its_limit(most: int, calls: list[list[int]]) -> None:
    record = Recorder()

    async def main() -> list[int]:
        batches: Batches[int, int] = Batches(record, most)
        return list(await asyncio.gather(*(batches.submit(i) for i in range(0, 10, 2))))

    assert asyncio.run(main()) == [0, 4, 8, 12, 16]
    assert record.calls == calls


@pytest.mark.parametrize(("linger", "first_call"), [(0.5, [0, 2, 4]), (0.0, [0])])
def test_a_linger_gathers_items_that_come_one_after_another(
    linger: float, first_call: list[int]
) -> None:
    """Items 10 ms apart share one call when the call waits ``linger`` after its first
    item; without a linger the first goes alone, as soon as it comes."""
    record = Recorder()

    async def main() -> tuple[list[int], float]:
        batches: Batches[int, int] = Batches(record, linger=linger)
        started = time.monotonic()
        answers = []
        for i in (0, 2, 4):
            answers.append(asyncio.create_task(batches.submit(i)))
            await asyncio.sleep(0.01)
        return list(await asyncio.gather(*answers)), time.monotonic() - started

    answers, took = asyncio.run(main())
    assert answers == [0, 4, 8]
    assert record.calls[0] == first_call
    assert took >= linger


def test_a_full_batch_does_not_wait_for_the_linger() -> None:
    record = Recorder()

    async def main() -> list[int]:
        batches: Batches[int, int] = Batches(record, most=2, linger=600)
        async with asyncio.timeout(60):  # two full batches: no reason to wait
            return list(await asyncio.gather(*(batches.submit(i) for i in (0, 2, 4, 6))))

    assert asyncio.run(main()) == [0, 4, 8, 12]
    assert record.calls == [[0, 2], [4, 6]]
