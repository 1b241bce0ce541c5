"""The runner's journal: a restarted runner re-adopts running containers and reports the
endings it missed; a vanished runner's tasks are lost and come back."""

from __future__ import annotations

import contextlib
from pathlib import Path

from kawa.protocol.tasks import Mount, TaskSpec
from tests.integration.cluster import Cluster, eventually


def _submit(cluster: Cluster, script: str, gate: Path | None = None) -> str:
    """A running task on ``solo``; ``gate`` (a directory) is mounted at /gate."""
    mounts = [] if gate is None else [Mount(source=str(gate), target="/gate")]
    with cluster.client() as c:
        spec = TaskSpec(command=["sh", "-c", script], targets=["solo"], mounts=mounts)
        [t] = c.submit(spec).tasks
        eventually(lambda: c.task(t.id).state == "running", what="running")
    return t.id


WAIT_FOR_GATE = "while [ ! -e /gate/go ]; do sleep 0.1; done"
"""Shell that waits until the test creates ``go`` in the gate directory."""


def _gate(tmp_path: Path) -> Path:
    gate = tmp_path / "gate"
    gate.mkdir()
    return gate


def _state(cluster: Cluster, task_id: str) -> str:
    with cluster.client() as c:
        return c.task(task_id).state.value


def _final(cluster: Cluster, task_id: str):  # type: ignore[no-untyped-def]
    """The settled task and its output (``wait`` itself returns on ``lost``)."""
    with cluster.client() as c:
        t = eventually(
            lambda: (v := c.task(task_id)).state not in ("lost", "running") and v,
            60,
            "task settled",
        )
        return t, b"".join(c.logs(task_id)).decode()


def test_restarted_runner_readopts_a_running_container(
    fresh_cluster: Cluster, tmp_path: Path
) -> None:
    fresh_cluster.add_runner("solo")
    gate = _gate(tmp_path)
    task_id = _submit(fresh_cluster, f"echo before; {WAIT_FOR_GATE}; echo after; exit 5", gate)
    fresh_cluster.stop_runner("solo")  # SIGKILL: no chance to clean up
    assert [c.status for c in fresh_cluster.containers(task=task_id)] == ["running"]
    fresh_cluster.start_runner("solo")
    # the container still runs (it waits for the gate): the new runner must adopt it
    log = fresh_cluster.root / "runner-solo.log"
    eventually(
        lambda: f"re-adopted running task {task_id}" in log.read_text(errors="replace"),
        30,
        "the restarted runner to re-adopt the container",
    )
    eventually(lambda: _state(fresh_cluster, task_id) == "running", 20, "running (again)")
    (gate / "go").touch()
    t, out = _final(fresh_cluster, task_id)
    assert (t.state, t.exit_code) == ("failed", 5)
    assert out == "before\nafter\n"
    # it ended from running, as the re-adopted container's exit: if the host called it
    # lost meanwhile, it came back to running first
    assert [h.target for h in t.history][-2:] == ["running", "failed"]


def test_ending_while_runner_was_down_is_reported_after_restart(fresh_cluster: Cluster) -> None:
    fresh_cluster.add_runner("solo")
    task_id = _submit(fresh_cluster, "sleep 1; echo finished")
    fresh_cluster.stop_runner("solo")
    eventually(lambda: _state(fresh_cluster, task_id) == "lost", 20, "task lost")
    eventually(
        lambda: all(c.status == "exited" for c in fresh_cluster.containers(task=task_id)),
        20,
        "container exited",
    )
    fresh_cluster.start_runner("solo")
    t, out = _final(fresh_cluster, task_id)
    assert (t.state, t.exit_code) == ("completed", 0)
    assert out == "finished\n"
    assert [h.target for h in t.history][-2:] == ["lost", "completed"]
    eventually(lambda: not fresh_cluster.containers(task=task_id), 20, "container removed")


def test_lost_task_returns_to_running_when_runner_comes_back(
    fresh_cluster: Cluster, tmp_path: Path
) -> None:
    fresh_cluster.add_runner("solo")
    gate = _gate(tmp_path)  # the task runs until the test opens it, however slow the restart
    task_id = _submit(fresh_cluster, f"{WAIT_FOR_GATE}; echo bye", gate)
    fresh_cluster.stop_runner("solo")
    eventually(lambda: _state(fresh_cluster, task_id) == "lost", 20, "task lost")
    assert fresh_cluster.node_status("solo") == "offline"
    fresh_cluster.start_runner("solo")
    eventually(lambda: _state(fresh_cluster, task_id) == "running", 20, "running again")
    (gate / "go").touch()
    t, out = _final(fresh_cluster, task_id)
    assert t.state == "completed"
    assert out == "bye\n"
    assert [h.target for h in t.history][-3:] == ["lost", "running", "completed"]


def test_runner_removes_its_own_orphans_only(fresh_cluster: Cluster) -> None:
    import docker

    fresh_cluster.add_runner("solo")
    with fresh_cluster.client() as c:
        cluster_id = c.health()["cluster_id"]
    client = docker.from_env()
    # Stopped first: a running runner may reconcile between create and start of the
    # container below and remove it while Docker is still starting it.
    fresh_cluster.stop_runner("solo")
    mine = client.containers.run(
        fresh_cluster.image,
        ["sleep", "60"],
        detach=True,
        labels={"kawa.cluster": cluster_id, "kawa.node": "solo", "kawa.task": "123"},
    )
    other = client.containers.run(
        fresh_cluster.image,
        ["sleep", "60"],
        detach=True,
        labels={"kawa.cluster": "someone-else", "kawa.node": "solo", "kawa.task": "123"},
    )
    try:
        fresh_cluster.start_runner("solo")
        eventually(
            # The low-level list: the high-level one inspects each container it lists and
            # fails when one is removed in between (as the runner does here).
            lambda: not client.api.containers(all=True, filters={"id": mine.id}),
            20,
            "orphan removed",
        )
        other.reload()
        assert other.status == "running"
    finally:
        for c in (mine, other):
            with contextlib.suppress(docker.errors.NotFound):
                c.remove(force=True)
