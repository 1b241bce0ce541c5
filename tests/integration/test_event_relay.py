"""Events between hosts on one real PostgreSQL database: a change published by one
host reaches the other's subscribers (read afresh there), and never comes back to it."""

from __future__ import annotations

import asyncio

from kawa.host.event_relay import EventRelay
from kawa.host.events import EventBus
from kawa.protocol.events import Event
from kawa.protocol.nodes import NodeView
from tests.postgres_support import fresh_database
from tests.support import until
from tests.unit.test_event_replay import node


def test_a_change_on_one_host_reaches_the_other_host_s_subscribers() -> None:
    with fresh_database() as url:
        asyncio.run(_exchange(url))


async def _exchange(url: str) -> None:
    buses = {"a": EventBus(), "b": EventBus()}
    stored = {"r1": node("r1")}  # what the database says about the node
    stored["r1"].running_tasks = 7

    def read_node(name: str) -> NodeView | None:
        return stored.get(name)

    def no_task(_: str) -> None:
        return None

    relays = {k: EventRelay(url, bus, no_task, read_node, retry=0.1) for k, bus in buses.items()}
    running = [asyncio.create_task(r.run()) for r in relays.values()]
    try:
        for r in relays.values():
            await asyncio.wait_for(r.listening.wait(), 10)
        seen: dict[str, list[Event]] = {"a": [], "b": []}
        with buses["a"].subscribe() as on_a, buses["b"].subscribe() as on_b:
            buses["a"].publish_node(node("r1"))
            buses["a"].publish_node(node("gone"))  # not in the database any more
            event = await asyncio.wait_for(on_b.queue.get(), 10)
            assert event is not None and event.node is not None
            assert event.node.name == "r1" and event.node.running_tasks == 7  # read on b
            # a last event after them: relayed in order, so whatever b was sent about
            # "gone" would reach it before this one
            buses["a"].publish_node(node("r1"))
            last = await asyncio.wait_for(on_b.queue.get(), 10)
            assert last is not None and last.node is not None and last.node.name == "r1"
            for name, sub in (("a", on_a), ("b", on_b)):
                while not sub.queue.empty():
                    got = sub.queue.get_nowait()
                    assert got is not None and got.node is not None
                    seen[name].append(got)
        assert [e.node.name for e in seen["a"] if e.node] == ["r1", "gone", "r1"]  # no echo
        assert seen["b"] == []  # "gone" unreadable: skipped
    finally:
        for t in running:
            t.cancel()
        await asyncio.gather(*running, return_exceptions=True)
    await until(lambda: all(b.on_own is None for b in buses.values()), 1, "relays detached")
