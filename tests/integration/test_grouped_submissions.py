"""Submissions that arrive together are stored in one transaction, on a real database
(SQLite, and PostgreSQL where the suite's server is given): each keeps its own batch,
history, audit entry and answer, and one that is refused gets its own error, the same
as when sent alone, while the others are stored."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path

import pytest
from sqlalchemy import event, func, select

from kawa.host.app import Host, prepare_database
from kawa.host.auth import Principal
from kawa.host.batches import Batches
from kawa.host.errors import BadRequest, Forbidden, ServiceError
from kawa.host.task_service import Submission
from kawa.protocol.nodes import NodeInventory, NodeRegistration
from kawa.protocol.tasks import SubmitResponse, TaskSpec
from kawa.settings import HostConfig
from kawa.store.models import AuditEntry, Task, TaskTransition
from tests.postgres_support import fresh_database

ALICE = Principal("alice", "user")
VIEWER = Principal("vera", "viewer")


@pytest.fixture(params=["sqlite", "postgres"])
def host(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Host]:
    """A host in this process (no loops running) with one node of 4 cores."""
    with fresh_database() if request.param == "postgres" else nullcontext() as url:
        config = HostConfig(data_dir=tmp_path / "host", cluster_secret="s", database_url=url)
        host = Host(config, prepare_database(config))
        inventory = NodeInventory(cores=4, memory=8 << 30)
        host.nodes.register(
            NodeRegistration(name="n1", url="http://127.0.0.1:9", inventory=inventory)
        )
        try:
            yield host
        finally:
            host.sessions.kw["bind"].dispose()


def grouping(host: Host) -> list[int]:
    """Have ``host`` group submissions as it does, and say how many went in each call."""
    sizes: list[int] = []

    def commit(subs: list[Submission]) -> Sequence[SubmitResponse | Exception]:
        sizes.append(len(subs))
        return host.tasks.submit_all(subs)

    host.tasks.grouped = Batches(commit)
    return sizes


def sent_together(
    host: Host, sent: list[tuple[TaskSpec, Principal]]
) -> list[SubmitResponse | BaseException]:
    async def main() -> list[SubmitResponse | BaseException]:
        return await asyncio.gather(
            *(host.tasks.submit_grouped(spec, who) for spec, who in sent), return_exceptions=True
        )

    return asyncio.run(main())


def test_single_submissions_sent_together_are_stored_in_one_call_each_as_its_own_batch(
    host: Host,
) -> None:
    sizes = grouping(host)
    specs = [TaskSpec(command=["echo", str(n)], name=f"job-{n}", image="img") for n in range(6)]
    specs.append(TaskSpec(command=["echo", "span:{1..3}"], sweep=True, name="sw", image="img"))
    answers = sent_together(host, [(spec, ALICE) for spec in specs])

    assert sizes == [6]  # one transaction for the single ones; the sweep has its own
    assert all(isinstance(a, SubmitResponse) for a in answers), answers
    responses = [a for a in answers if isinstance(a, SubmitResponse)]
    assert len({r.batch_id for r in responses}) == 7
    assert [len(r.tasks) for r in responses] == [1] * 6 + [3]
    with host.sessions() as s:
        for spec, response in zip(specs, responses, strict=True):
            rows = s.scalars(
                select(Task).where(Task.batch_id == int(response.batch_id)).order_by(Task.id)
            ).all()
            assert [str(t.id) for t in rows] == [t.id for t in response.tasks]
            assert all(t.state == "pending" and t.owner == "alice" for t in rows)
            assert [t.name for t in response.tasks] == (
                [spec.name] if not spec.sweep else ["sw[1]", "sw[2]", "sw[3]"]
            )
            for task in rows:
                history = s.scalars(
                    select(TaskTransition).where(TaskTransition.task_id == task.id)
                ).all()
                assert [(h.source, h.target, h.event, h.cause) for h in history] == [
                    (None, "pending", "submitted", "submitted by alice")
                ]
        audit = s.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        submitted = sorted(e.target for e in audit if e.action == "task.submit")
        assert submitted == sorted(
            [r.tasks[0].id for r in responses[:6]] + [f"batch {responses[6].batch_id}"]
        )


def test_a_refused_submission_gets_its_own_error_and_its_neighbours_are_stored(
    host: Host,
) -> None:
    good = TaskSpec(command=["true"], image="img")
    unknown_environment = TaskSpec(command=["true"], container="nope")
    too_large = TaskSpec(command=["true"], cores=64, image="img")
    alone: list[ServiceError] = []
    for spec, who in ((unknown_environment, ALICE), (too_large, ALICE), (good, VIEWER)):
        with pytest.raises(ServiceError) as raised:
            host.tasks.submit(spec, who)
        alone.append(raised.value)
    with host.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Task)) == 0

    sizes = grouping(host)
    sent = [
        (good, ALICE),
        (unknown_environment, ALICE),
        (good, ALICE),
        (too_large, ALICE),
        (good, VIEWER),
        (good, ALICE),
    ]
    answers = sent_together(host, sent)

    assert sizes == [6]
    refused = [answers[1], answers[3], answers[4]]
    assert [type(a) for a in refused] == [BadRequest, BadRequest, Forbidden]
    assert [str(a) for a in refused] == [str(a) for a in alone]
    assert "unknown container environment 'nope'" in str(answers[1])
    stored = [a for a in answers if isinstance(a, SubmitResponse)]
    assert len(stored) == 3
    with host.sessions() as s:
        ids = {str(i) for i in s.scalars(select(Task.id))}
        assert ids == {r.tasks[0].id for r in stored}  # nothing of the refused ones
        assert s.scalar(select(func.count()).select_from(TaskTransition)) == 3
        actions = s.scalars(select(AuditEntry.action)).all()
        assert [a for a in actions if a == "task.submit"] == ["task.submit"] * 3


def test_a_submission_waits_for_the_write_lock_only_to_commit_on_postgresql(host: Host) -> None:
    """Adding tasks reads and writes nothing another writer changes: on PostgreSQL it is
    written while another of the host's writers holds the lock, and waits only to commit
    (so its event still follows every commit before it); on SQLite it waits throughout."""
    spec = TaskSpec(command=["echo", "hi"], name="while-locked", image="img")
    statements: list[str] = []
    engine = host.sessions.kw["bind"]

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement.split(None, 1)[0].upper())

    done = threading.Event()
    answer: list[SubmitResponse] = []

    def submit() -> None:
        answer.append(host.tasks.submit(spec, ALICE))
        done.set()

    with host.ledger.write_lock:  # another writer, mid-transaction
        event.listen(engine, "before_cursor_execute", seen)
        try:
            worker = threading.Thread(target=submit)
            worker.start()
            if host.ledger.locks_rows:
                deadline = time.monotonic() + 10
                while "INSERT" not in statements:  # its rows are written meanwhile
                    assert time.monotonic() < deadline, f"nothing inserted: {statements}"
                    time.sleep(0.01)
            else:
                worker.join(0.3)  # it cannot have begun: SQLite takes one writer
                assert statements == []
            assert not done.is_set()  # and the commit waits for the lock
        finally:
            event.remove(engine, "before_cursor_execute", seen)
    assert done.wait(10)
    worker.join(10)
    with host.sessions() as s:
        assert s.scalar(select(func.count()).where(Task.name == "while-locked")) == 1
    assert answer and answer[0].tasks[0].name == "while-locked"


def test_the_views_a_submission_answers_with_are_the_tasks_as_stored(host: Host) -> None:
    """The answer's (and the event's) views are built from the new rows: they equal the
    views of the tasks read back, field for field."""
    specs = [
        TaskSpec(
            command=["sh", "-c", "echo $A"],
            name="full",
            image="img",
            env={"A": "1"},
            cores=2,
            memory=1 << 30,
            priority=5,
            timeout=90,
            targets=["n1"],
        ),
        TaskSpec(command=["echo", "span:{1..2}"], sweep=True, image="img", max_parallel=1),
    ]
    answers = sent_together(host, [(spec, ALICE) for spec in specs])
    for answer in answers:
        assert isinstance(answer, SubmitResponse), answer
        for view in answer.tasks:
            stored = host.ledger.view(view.id, history=False)
            assert view.model_dump() == stored.model_dump()
