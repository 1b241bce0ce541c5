"""Group commit: an item a group's call refuses gets its own error; its neighbours get
their answers from the same call."""

from __future__ import annotations

import asyncio

from kawa.host.group_commit import GroupCommit


def test_an_item_refused_in_a_group_gets_its_error_and_the_others_their_answers() -> None:
    calls: list[list[int]] = []

    def commit(items: list[int]) -> list[int | Exception]:
        calls.append(list(items))
        return [ValueError(f"{i} is odd") if i % 2 else i * 10 for i in items]

    async def main() -> list[int | BaseException]:
        group: GroupCommit[int, int] = GroupCommit(commit)
        return list(await asyncio.gather(*(group.add(i) for i in range(4)), return_exceptions=True))

    zero, one, two, three = asyncio.run(main())
    assert (zero, two) == (0, 20)
    assert isinstance(one, ValueError) and str(one) == "1 is odd"
    assert isinstance(three, ValueError) and str(three) == "3 is odd"
    assert calls == [[0, 1, 2, 3]]  # refusals are answers: the group is not done again
