"""Batched recording of runners' acknowledgements: what arrives together is recorded
together, a lone one at once, and a failed batch one by one."""

from __future__ import annotations

import asyncio

from kawa.host.acknowledgements import Acknowledgements


class Recorder:
    """Records calls; ends tasks in ``ended``; refuses any batch holding ``broken``."""

    def __init__(self, ended: frozenset[int] = frozenset(), broken: int | None = None) -> None:
        self.calls: list[list[int]] = []
        self.ended, self.broken = set(ended), broken

    def __call__(self, task_ids: list[int]) -> set[int]:
        self.calls.append(list(task_ids))
        if self.broken in task_ids:
            raise RuntimeError(f"task {self.broken} cannot be recorded")
        return self.ended & set(task_ids)


def test_acknowledgements_that_arrive_together_are_recorded_in_one_call() -> None:
    record = Recorder(ended=frozenset({3}))

    async def main() -> list[bool]:
        acks = Acknowledgements(record)
        return list(await asyncio.gather(*(acks.acknowledge(i) for i in range(1, 6))))

    assert asyncio.run(main()) == [False, False, True, False, False]
    assert record.calls == [[1, 2, 3, 4, 5]]


def test_a_lone_acknowledgement_is_recorded_at_once_and_later_ones_after_it() -> None:
    record = Recorder()

    async def main() -> None:
        acks = Acknowledgements(record)
        assert await acks.acknowledge(1) is False
        assert record.calls == [[1]]
        first = asyncio.create_task(acks.acknowledge(2))
        await asyncio.sleep(0)  # the first batch is being recorded now
        rest = [asyncio.create_task(acks.acknowledge(i)) for i in (3, 4)]
        await asyncio.gather(first, *rest)

    asyncio.run(main())
    assert record.calls == [[1], [2], [3, 4]]


def test_a_batch_that_fails_is_recorded_one_by_one() -> None:
    record = Recorder(ended=frozenset({1}), broken=2)

    async def main() -> list[bool | BaseException]:
        acks = Acknowledgements(record)
        return list(
            await asyncio.gather(*(acks.acknowledge(i) for i in (1, 2, 3)), return_exceptions=True)
        )

    first, second, third = asyncio.run(main())
    assert (first, third) == (True, False)
    assert isinstance(second, RuntimeError) and "task 2 cannot be recorded" in str(second)
    assert record.calls == [[1, 2, 3], [1], [2], [3]]
