"""Assignments a killed host left behind: placed, their dispatch cut short with the
process. The restarted host settles each by what the runner's next heartbeat lists
(the real host services on a real SQLite database; no runner process needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from kawa.host.app import Host, prepare_database
from kawa.host.auth import Principal
from kawa.protocol.nodes import (
    Heartbeat,
    NodeInventory,
    NodeRegistration,
    NodeUsageSample,
    RunnerTaskObservation,
)
from kawa.protocol.runner_api import ExitKind, TaskReport
from kawa.protocol.tasks import TaskSpec
from kawa.settings import HostConfig

ADMIN = Principal("admin", "admin")


def heartbeat(*seen: tuple[str, str]) -> Heartbeat:
    usage = NodeUsageSample(
        at=datetime.now(UTC), cpu_percent=0.0, memory_used=0, memory_percent=0.0
    )
    return Heartbeat(
        name="n1",
        usage=usage,
        tasks=[RunnerTaskObservation(task_id=t, state=s) for t, s in seen],
    )


def test_a_restarted_host_settles_the_dispatches_its_predecessor_cut_short(
    tmp_path: Path,
) -> None:
    config = HostConfig(data_dir=tmp_path, cluster_secret="s")
    sessions = prepare_database(config)
    old = Host(config, sessions)
    old.nodes.register(
        NodeRegistration(
            name="n1", url="http://127.0.0.1:9", inventory=NodeInventory(cores=8, memory=2**33)
        )
    )
    spec = TaskSpec(command=["true"], image="img")
    ids = [old.tasks.submit(spec, ADMIN).tasks[0].id for _ in range(4)]
    placed = old.scheduler.schedule_once()  # placed; the dispatches never leave (killed)
    assert sorted(d.order.task_id for d in placed) == sorted(ids)
    running, paused, ended, never = ids

    new = Host(config, sessions)  # the restart, on the same database
    [late] = new.tasks.submit(spec, ADMIN).tasks
    assert [d.order.task_id for d in new.scheduler.schedule_once()] == [late.id]
    new.nodes.heartbeat(heartbeat((running, "running"), (paused, "paused"), (ended, "exited")))

    def state(task_id: str) -> str:
        return new.tasks.get(task_id, ADMIN).state.value

    assert [state(t) for t in ids] == ["running", "paused", "assigning", "pending"]
    assert "never received it" in new.tasks.get(never, ADMIN).history[-1].cause
    # This process's own dispatch is in flight: a heartbeat without it changes nothing.
    assert state(late.id) == "assigning"
    # The ending the runner listed arrives as a report; a later heartbeat no longer
    # lists it and it stays settled.
    new.reports.handle(
        TaskReport(
            task_id=ended,
            node="n1",
            state="ended",
            exit_kind=ExitKind.EXITED,
            exit_code=0,
            at=datetime.now(UTC),
        )
    )
    new.nodes.heartbeat(heartbeat((running, "running"), (paused, "paused")))
    assert [state(t) for t in ids] == ["running", "paused", "completed", "pending"]
