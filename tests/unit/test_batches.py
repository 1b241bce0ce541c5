"""Work recorded in batches: an item refused on its own fails alone, a batch holds at
most its limit, and what waits goes in the next call."""

from __future__ import annotations

import asyncio

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
