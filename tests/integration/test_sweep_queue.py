"""The scheduler's view of capped batches, read from a real SQLite database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from kawa.core.ids import IdGenerator
from kawa.core.scheduler import BatchCap
from kawa.host.queue_rows import batch_caps, pending_queue
from kawa.store.models import QUEUED, Task

IDS = IdGenerator()


def row(batch: int, cap: int | None = None, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict(
        id=IDS.next(), batch_id=batch, name=None, kind="command", state="pending",
        desired="run", owner="u", command=["true"], target=None, node=None, numa=None,
        gpu_ids=[], cpuset=[], cores=1, memory=None, gpus=0, env={}, mounts=[],
        container=None, image="i", native=False, privileged=False, workdir=None,
        network="host", timeout=None, priority=0, created_at=datetime.now(UTC),
        waiting_reason=QUEUED, ssh_key=None, batch_max_parallel=cap,
    )  # fmt: skip
    return {**base, **changes}


def test_a_capped_batch_does_not_crowd_others_out_of_the_scan(
    sessions: sessionmaker[Session],
) -> None:
    big, small = IDS.next(), IDS.next()
    capped = [row(big, cap=2) for _ in range(50)]  # submitted first: ahead in FIFO order
    others = [row(IDS.next()) for _ in range(5)] + [row(small, cap=1) for _ in range(3)]
    urgent = row(IDS.next(), priority=5)
    with sessions.begin() as s:
        s.execute(insert(Task), [*capped, *others, urgent])
    with sessions() as s:
        got = [r.id for r in pending_queue(s, scan=10)]
    expected = [urgent["id"], capped[0]["id"], capped[1]["id"]]
    expected += [r["id"] for r in others[:5]] + [others[5]["id"]]
    assert got == expected
    with sessions() as s:
        assert [r.id for r in pending_queue(s, scan=2)] == expected[:2]


def test_new_only_reads_tasks_no_pass_has_looked_at(sessions: sessionmaker[Session]) -> None:
    batch = IDS.next()
    seen = row(batch, cap=2, waiting_reason="no node has 1 free core now")
    fresh = row(batch, cap=2)
    with sessions.begin() as s:
        s.execute(insert(Task), [seen, fresh, row(IDS.next(), waiting_reason="x")])
    with sessions() as s:
        assert [r.id for r in pending_queue(s, scan=10, new_only=True)] == [fresh["id"]]


def test_batch_caps_count_the_tasks_holding_resources(sessions: sessionmaker[Session]) -> None:
    batch, free = IDS.next(), IDS.next()
    states = ["running", "assigning", "paused", "lost", "completed", "failed", "pending"]
    with sessions.begin() as s:
        s.execute(insert(Task), [row(batch, cap=5, state=st) for st in states])
    with sessions() as s:
        assert batch_caps(s, {batch: 5, free: None}) == {batch: BatchCap(5, 4)}
        assert batch_caps(s, {free: None}) == {}
