"""The parts of relaying events between hosts that need no database: what a
notification carries, which events are sent on, and ending subscriptions that may
have missed events."""

from __future__ import annotations

import asyncio
import json

from kawa.host.event_relay import PAYLOAD_LIMIT, Changed, payloads
from kawa.host.events import EventBus
from kawa.protocol.events import Event
from tests.unit.test_event_replay import node


def node_event(name: str) -> Event:
    return Event(seq=1, type="node", node=node(name))


def test_each_node_is_named_once_and_payloads_stay_under_the_limit() -> None:
    events = [node_event(f"node-{i:04d}") for i in range(2000)] + [node_event("node-0001")]
    sent = payloads("me", events)
    assert len(sent) > 1 and all(len(p.encode()) < PAYLOAD_LIMIT for p in sent)
    parsed = [Changed.parse(p) for p in sent]
    names = [n for c in parsed if c is not None for n in c.nodes]
    assert names == [f"node-{i:04d}" for i in range(2000)]
    assert {c.origin for c in parsed if c is not None} == {"me"} and not payloads("me", [])


def test_a_foreign_payload_is_ignored() -> None:
    for bad in ("", "x", "[]", json.dumps({"o": "a"}), json.dumps({"o": "a", "t": 1, "n": []})):
        assert Changed.parse(bad) is None
    assert Changed.parse(Changed("a", ["1"], ["n"]).payload()) == Changed("a", ["1"], ["n"])


async def test_only_this_process_s_own_events_are_sent_on() -> None:
    bus = EventBus(queue_size=100, replay_size=10)
    own: list[Event] = []
    bus.on_own = own.append
    with bus.subscribe() as sub:
        bus.publish_node(node("mine"))
        bus.publish_node(node("theirs"), relayed=True)
        assert sub.queue.qsize() == 2  # subscribers get both
    assert [e.node.name for e in own if e.node] == ["mine"]


async def test_forget_ends_every_subscription_and_resumes_get_a_reset() -> None:
    bus = EventBus(queue_size=100, replay_size=10)
    bus.publish_node(node("a"))
    seq = bus.current
    with bus.subscribe() as sub:
        bus.forget()
        got = [e async for e in sub]
        assert got == []  # the stream ended: the client reconnects and re-reads
    with bus.subscribe(after=seq - 1) as resumed:
        first = await asyncio.wait_for(resumed.queue.get(), 1)
    assert first is not None and first.type == "reset"
