"""Every way a task can fail to reach or start on its runner ends somewhere, with a
reason, and frees what the task held: runner refusals, a runner that cannot be reached
at its address, a runner that stops between placement and dispatch, an order that
cannot be built or sent, a kill of a task its runner never got, an assigning task no one
is sending or running."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import event

from kawa.core.task_states import TaskEvent
from kawa.host.app import Host, prepare_database, register_environment
from kawa.host.auth import Principal
from kawa.protocol.nodes import (
    Heartbeat,
    NodeInventory,
    NodeRegistration,
    NodeUsageSample,
    RunnerTaskObservation,
)
from kawa.protocol.runner_api import ExitKind, TaskReport
from kawa.protocol.tasks import Mount, TaskAction, TaskSpec, TaskView
from kawa.settings import HostConfig
from kawa.store.models import Task
from tests.conftest import BASE_IMAGE
from tests.integration.cluster import Cluster, eventually, when
from tests.support import submit as submit_task
from tests.support import view

T = TypeVar("T")
GIB = 1 << 30
ADMIN = Principal("admin", "admin")
MISSING_IMAGE = "kawa-test/no-such-image:never"


def closed_port() -> int:
    """A port nothing listens on (bound, then released: connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def submit(cluster: Cluster, **spec: object) -> str:
    return submit_task(cluster, **spec).id


def settled(cluster: Cluster, task_id: str, timeout: float = 60) -> TaskView:
    """The task, with its history, once ``kawa task wait`` returns for it."""
    with cluster.client() as c:
        c.wait([task_id], timeout=timeout)
        return c.task(task_id)


def held_cores(cluster: Cluster, node: str) -> int:
    with cluster.client() as c:
        return c.node(node).held.cores


# -- refusals and failures on a real runner ---------------------------------------------
def test_missing_image_fails_with_a_reason_and_frees_the_core(fresh_cluster: Cluster) -> None:
    fresh_cluster.add_runner("solo", cores=1)
    bad = settled(fresh_cluster, submit(fresh_cluster, command=["true"], image=MISSING_IMAGE))
    assert bad.state == "failed"
    assert MISSING_IMAGE in (bad.error or ""), bad.error
    assert [h.target for h in bad.history] == ["pending", "assigning", "failed"]
    assert held_cores(fresh_cluster, "solo") == 0
    # the one core is free again: a second task runs on it
    ok = settled(fresh_cluster, submit(fresh_cluster, command=["echo", "after"]))
    assert (ok.state, ok.node) == ("completed", "solo"), ok.error


def test_a_command_missing_from_the_image_fails_naming_it(cluster: Cluster) -> None:
    t = settled(cluster, submit(cluster, command=["/no/such/binary", "x"]))
    assert t.state == "failed"
    assert "/no/such/binary" in (t.error or ""), t.error


def test_an_exec_format_error_is_the_reason(cluster: Cluster, tmp_path: Path) -> None:
    script = tmp_path / "no-shebang"
    script.write_text("echo this is no program\n")
    script.chmod(0o755)
    t = settled(
        cluster,
        submit(
            cluster, command=["/x/no-shebang"], mounts=[Mount(source=str(tmp_path), target="/x")]
        ),
    )
    assert t.state == "failed"
    assert "exec /x/no-shebang: exec format error" in (t.error or ""), t.error


def test_a_failure_without_a_message_gets_one_from_its_exit_code(cluster: Cluster) -> None:
    t = settled(cluster, submit(cluster, command=["sh", "-c", "exit 7"]))
    assert (t.state, t.exit_code, t.error) == ("failed", 7, "exited with code 7")
    script = "sleep 60 & kill -9 $!; wait $!"  # the shell exits with its child's 137
    t = settled(cluster, submit(cluster, command=["sh", "-c", script]))
    assert (t.state, t.error) == ("failed", "killed by SIGKILL (exit code 137)")


# -- runners that cannot be reached -----------------------------------------------------
UNCHECKED = {"KAWA_HOST_CHECK_RUNNER_REACHABLE": "false"}
"""A host that registers runners without reaching them back first (else a ghost runner
is refused at registration: tests/integration/test_join.py)."""


@pytest.fixture
def unchecked_cluster(docker_available: None, tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, BASE_IMAGE, extra_host_env=UNCHECKED)
    try:
        c.start_host()
        yield c
    finally:
        c.close()


def ghost_runner(cluster: Cluster) -> None:
    """A live runner (it registers and heartbeats) that advertises an address where
    nothing listens: every order to it is refused a connection (its host must not check
    registrations: :data:`UNCHECKED`)."""
    cluster.runner_env = {"KAWA_RUNNER_ADVERTISE_URL": f"http://127.0.0.1:{closed_port()}"}
    cluster.add_runner("ghost", cores=1)


def test_a_runner_unreachable_at_its_address_fails_the_task(unchecked_cluster: Cluster) -> None:
    fresh_cluster = unchecked_cluster
    ghost_runner(fresh_cluster)
    t = settled(fresh_cluster, submit(fresh_cluster, command=["true"]), timeout=60)
    assert t.state == "failed"
    assert (t.error or "").startswith("dispatch to ghost failed: runner unreachable at"), t.error
    assert [(h.target, h.event) for h in t.history][1:] == [
        ("assigning", "placed"),
        ("failed", "dispatch_error"),
    ]
    assert held_cores(fresh_cluster, "ghost") == 0
    assert fresh_cluster.node_status("ghost") == "online"


@pytest.fixture
def slow_timeout_cluster(docker_available: None, tmp_path: Path) -> Iterator[Cluster]:
    """A cluster whose host takes 30 s to call a silent node offline."""
    env = {"KAWA_HOST_NODE_TIMEOUT": "30", **UNCHECKED}
    c = Cluster(tmp_path, BASE_IMAGE, extra_host_env=env)
    try:
        c.start_host()
        yield c
    finally:
        c.close()


def test_kill_before_the_order_reaches_the_runner_ends_the_task(
    slow_timeout_cluster: Cluster,
) -> None:
    ghost_runner(slow_timeout_cluster)
    task_id = submit(slow_timeout_cluster, command=["true"])
    eventually(lambda: view(slow_timeout_cluster, task_id).state == "assigning", 20, "assigning")
    with slow_timeout_cluster.client() as c:
        c.act(task_id, TaskAction.KILL)
    t = eventually(
        lambda: when(v := view(slow_timeout_cluster, task_id), v.state == "killed"),
        20,
        "the kill to end the task",
    )
    assert t.history[-1].event == "killed_before_start"
    assert held_cores(slow_timeout_cluster, "ghost") == 0


def test_a_runner_stopped_before_dispatch_sends_the_task_back_to_the_queue(
    docker_available: None, tmp_path: Path
) -> None:
    # 10 s to call the stopped runner's node offline: the task is surely placed on it
    c = Cluster(tmp_path, BASE_IMAGE, extra_host_env={"KAWA_HOST_NODE_TIMEOUT": "10"})
    try:
        c.start_host()
        c.add_runner("solo", cores=1)
        c.stop_runner("solo", signal.SIGKILL)
        task_id = submit(c, command=["echo", "ran"])
        back = eventually(
            lambda: when(v := view(c, task_id), v.state == "pending" and len(v.history) > 1),
            40,
            "the task back in the queue",
        )
        assert [(h.target, h.event) for h in back.history] == [
            ("pending", "submitted"),
            ("assigning", "placed"),
            ("lost", "runner_lost"),  # the node went offline while the order was retried
            ("pending", "dispatch_failed"),
        ]
        assert "dispatch to solo failed" in back.history[-1].cause
        assert c.node_status("solo") == "offline"
        assert back.node is None
        c.start_runner("solo")
        done = settled(c, task_id)
        assert (done.state, done.node) == ("completed", "solo"), done.error
    finally:
        c.close()


# -- the host's own services on a real database (no Docker) -----------------------------
def in_process_host(tmp_path: Path, secret: str = "s", node_timeout: float = 20.0) -> Host:
    config = HostConfig(
        data_dir=tmp_path / "host", cluster_secret=secret, node_timeout=node_timeout
    )
    sessions = prepare_database(config)
    register_environment(sessions, config.default_container, BASE_IMAGE)
    return Host(config, sessions)


def register(host: Host, name: str, url: str) -> None:
    inventory = NodeInventory(cores=4, memory=8 * GIB)
    host.nodes.register(NodeRegistration(name=name, url=url, inventory=inventory))


def run(host: Host, body: Callable[[], Awaitable[T]]) -> T:
    """Run ``body`` in one event loop and close the host's runner client in it."""

    async def main() -> T:
        try:
            return await body()
        finally:
            await host.link.close()

    return asyncio.run(main())


def test_an_order_that_cannot_be_built_fails_the_task(tmp_path: Path) -> None:
    """A row the API would refuse (an infinite timeout) cannot become an order: the task
    fails with the reason and frees its core instead of staying assigning."""
    host = in_process_host(tmp_path)
    register(host, "n1", f"http://127.0.0.1:{closed_port()}")
    [t] = host.tasks.submit(TaskSpec(command=["true"]), ADMIN).tasks
    with host.sessions.begin() as s:
        row = s.get(Task, int(t.id))
        assert row is not None
        row.timeout = float("inf")
    assert host.scheduler.schedule_once() == []  # nothing to send
    done = host.ledger.view(t.id)
    assert done.state == "failed"
    assert (done.error or "").startswith("dispatch to n1 failed:"), done.error
    assert "finite number" in (done.error or ""), done.error
    assert done.history[-1].event == "dispatch_error"
    assert host.nodes.get("n1").held.cores == 0


def test_acknowledgements_that_arrive_together_are_recorded_in_one_transaction(
    tmp_path: Path,
) -> None:
    """Runners' answers that arrive while none is being recorded are recorded together;
    a task killed before its answer came is told apart, and a lone answer later is
    recorded at once."""
    host = in_process_host(tmp_path)
    register(host, "n1", f"http://127.0.0.1:{closed_port()}")
    spec = TaskSpec(command=["sleep", "span:{1..4}"], sweep=True)
    ids = [int(t.id) for t in host.tasks.submit(spec, ADMIN).tasks]
    assert len(host.scheduler.schedule_once()) == 4  # all assigning; none is sent
    with host.ledger.change() as change:
        killed = change.session.get(Task, ids[0])
        assert killed is not None
        change.apply(killed, TaskEvent.KILLED_BEFORE_START, "killed while under way")
    commits: list[object] = []
    event.listen(host.sessions.kw["bind"], "commit", commits.append)

    async def together() -> list[bool]:
        return list(await asyncio.gather(*(host.scheduler.acknowledge(i) for i in ids[:3])))

    assert run(host, together) == [True, False, False]
    assert len(commits) == 1
    assert run(host, lambda: host.scheduler.acknowledge(ids[3])) is False
    assert len(commits) == 2
    views = [host.ledger.view(str(i)) for i in ids]
    assert [v.state for v in views] == ["killed", "running", "running", "running"]
    for v in views[1:]:
        assert [h.event for h in v.history].count("started") == 1


def test_kill_of_an_assigning_task_its_runner_does_not_have_ends_it(
    fresh_cluster: Cluster, tmp_path: Path
) -> None:
    """A real runner answers the kill "not running here": the task is killed, its core
    freed (the bug: the refusal was passed on and the task stayed assigning)."""
    runner = fresh_cluster.add_runner("solo", cores=1)
    host = in_process_host(tmp_path, secret=fresh_cluster.secret)
    register(host, "solo", f"http://127.0.0.1:{runner.port}")
    [t] = host.tasks.submit(TaskSpec(command=["true"]), ADMIN).tasks
    [job] = host.scheduler.schedule_once()  # placed, never sent
    assert host.ledger.view(t.id).state == "assigning"
    killed = run(host, lambda: host.tasks.act(t.id, TaskAction.KILL, ADMIN))
    assert killed.state == "killed"
    assert killed.history[-1].event == "killed_before_start"
    assert "does not have the task" in killed.history[-1].cause
    assert host.nodes.get("solo").held.cores == 0
    assert job.node == "solo"


def heartbeat(host: Host, node: str, tasks: dict[str, str]) -> None:
    sample = NodeUsageSample(
        at=datetime.now(UTC), cpu_percent=0.0, memory_used=0, memory_percent=0.0
    )
    seen = [RunnerTaskObservation(task_id=k, state=v) for k, v in tasks.items()]
    host.nodes.heartbeat(Heartbeat(name=node, usage=sample, tasks=seen))


def test_an_assigning_task_nobody_has_fails_after_the_node_timeout(tmp_path: Path) -> None:
    host = in_process_host(tmp_path, node_timeout=0.3)
    try:
        register(host, "n1", f"http://127.0.0.1:{closed_port()}")
        [lost] = host.tasks.submit(TaskSpec(command=["true"]), ADMIN).tasks
        [starting] = host.tasks.submit(TaskSpec(command=["true"]), ADMIN).tasks
        [reported] = host.tasks.submit(TaskSpec(command=["true"]), ADMIN).tasks
        [sending] = host.tasks.submit(TaskSpec(command=["true"]), ADMIN).tasks
        assert len(host.scheduler.schedule_once()) == 4  # all assigning; none is sent
        host.scheduler.dispatching.add(int(sending.id))  # as while its order is under way
        seen = {starting.id: "starting", reported.id: "running"}

        def expired() -> TaskView | None:
            heartbeat(host, "n1", seen)
            return when(v := host.ledger.view(lost.id), v.state == "failed")

        failed = eventually(expired, 10, "the unlisted assigning task to fail")
        assert failed.history[-1].event == "assign_expired"
        assert "runner n1 has not had the task" in (failed.error or "")
        assert host.ledger.view(reported.id).state == "running"
        assert host.ledger.view(starting.id).state == "assigning"
        assert host.ledger.view(sending.id).state == "assigning"
        assert host.nodes.get("n1").held.cores == 3
    finally:
        asyncio.run(host.link.close())


def test_a_task_lost_before_it_started_fails_if_its_runner_comes_back_without_it(
    tmp_path: Path,
) -> None:
    host = in_process_host(tmp_path, node_timeout=0.3)
    try:
        register(host, "n1", f"http://127.0.0.1:{closed_port()}")
        [t] = host.tasks.submit(TaskSpec(command=["true"]), ADMIN).tasks
        [_] = host.scheduler.schedule_once()  # assigning; its order is never sent
        eventually(lambda: host.nodes.mark_offline(), 10, "the silent node to go offline")
        assert host.ledger.view(t.id).state == "lost"

        def expired() -> TaskView | None:
            heartbeat(host, "n1", {})  # back, and without the task
            return when(v := host.ledger.view(t.id), v.state == "failed")

        failed = eventually(expired, 10, "the lost, never started task to fail")
        assert [h.event for h in failed.history][-2:] == ["runner_lost", "assign_expired"]
        assert host.nodes.get("n1").held.cores == 0
    finally:
        asyncio.run(host.link.close())


def test_an_ending_reported_before_the_start_still_marks_the_task_as_run(
    tmp_path: Path,
) -> None:
    """A task that ends in milliseconds may be reported ended while the host still has it
    assigning (the dispatch answer not yet settled): it ran, so it has a start time
    (clients follow the output of tasks that started)."""
    host = in_process_host(tmp_path)
    register(host, "n1", f"http://127.0.0.1:{closed_port()}")
    [t] = host.tasks.submit(TaskSpec(command=["true"]), ADMIN).tasks
    [_job] = host.scheduler.schedule_once()
    assert host.ledger.view(t.id).state == "assigning"
    host.reports.handle(
        TaskReport(
            task_id=t.id,
            node="n1",
            state="ended",
            exit_kind=ExitKind.EXITED,
            exit_code=0,
            at=datetime.now(UTC),
        )
    )
    done = host.ledger.view(t.id)
    assert done.state == "completed" and done.exit_code == 0
    assert done.started_at is not None and done.finished_at is not None
    assert done.started_at <= done.finished_at
