"""The event bus's replay ring: events after a sequence number, or a reset."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest

from kawa.host.events import EventBus
from kawa.protocol.events import Event
from kawa.protocol.nodes import HeldResources, NodeInventory, NodeStatus, NodeView


def node(name: str) -> NodeView:
    return NodeView(
        name=name,
        url="http://127.0.0.1:1",
        status=NodeStatus.ONLINE,
        inventory=NodeInventory(cores=1, memory=1),
        held=HeldResources(),
        registered_at=datetime.now(UTC),
    )


def drain(queue: asyncio.Queue[Event | None]) -> list[Event]:
    found = []
    while not queue.empty():
        event = queue.get_nowait()
        assert event is not None
        found.append(event)
    return found


async def test_events_after_a_kept_number_are_replayed_then_live_ones_follow() -> None:
    bus = EventBus(queue_size=100, replay_size=10)
    for i in range(5):
        bus.publish_node(node(f"n{i}"))
    first = bus.current - 4
    with bus.subscribe(after=first + 1) as sub:
        bus.publish_node(node("live"))
        got = drain(sub.queue)
    assert [e.node.name for e in got if e.node] == ["n2", "n3", "n4", "live"]
    assert [e.seq for e in got] == list(range(first + 2, first + 6))


async def test_a_number_that_fell_out_of_the_ring_gets_one_reset() -> None:
    bus = EventBus(queue_size=100, replay_size=3)
    for i in range(5):
        bus.publish_node(node(f"n{i}"))
    oldest_kept = bus.current - 2
    with bus.subscribe(after=oldest_kept - 1) as sub:  # nothing lost yet: replayed
        assert len(drain(sub.queue)) == 3
    with bus.subscribe(after=oldest_kept - 2) as sub:  # one lost: reset
        [reset] = drain(sub.queue)
    assert (reset.type, reset.seq) == ("reset", bus.current)


async def test_a_number_from_another_process_gets_a_reset() -> None:
    bus = EventBus(queue_size=100, replay_size=3)
    with bus.subscribe(after=bus.current + 1000) as sub:  # ahead of this process
        [reset] = drain(sub.queue)
    assert reset.type == "reset"
    with bus.subscribe(after=bus.current) as sub:  # up to date: nothing to replay
        assert drain(sub.queue) == []
    with bus.subscribe(after=1) as sub:  # an earlier process's number
        assert [e.type for e in drain(sub.queue)] == ["reset"]


def test_numbers_start_at_the_clock_in_microseconds() -> None:
    """So a later host process starts above an earlier one's numbers (unless that one
    published more than an event per microsecond since it started)."""
    before = time.time_ns() // 1000
    bus = EventBus()
    after = time.time_ns() // 1000
    assert before <= bus.current + 1 <= after
    bus.publish_node(node("n1"))
    assert bus.current == bus.replay(bus.current - 1)[0].seq  # type: ignore[index]
    assert bus.current < 2**53  # exact in a JavaScript number


def test_the_ring_must_fit_a_subscribers_queue() -> None:
    with pytest.raises(ValueError, match="smaller"):
        EventBus(queue_size=10, replay_size=10)
