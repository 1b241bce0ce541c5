"""Command tasks in real containers on a real host with two real runners."""

from __future__ import annotations

from pathlib import Path

import pytest

from kawa.protocol.tasks import Mount, TaskAction, TaskSpec
from tests.integration.cluster import Cluster, eventually, when


def run(cluster: Cluster, *command: str, **spec: object):  # type: ignore[no-untyped-def]
    with cluster.client() as c:
        submitted = c.submit(TaskSpec(command=list(command), **spec))  # type: ignore[arg-type]
        return c.wait([t.id for t in submitted.tasks], timeout=120)


def logs(cluster: Cluster, task_id: str, stream: str = "stdout") -> str:
    with cluster.client() as c:
        return b"".join(c.logs(task_id, stream)).decode()


def test_echo_completes_with_output_and_exit_code(cluster: Cluster) -> None:
    [ok] = run(cluster, "sh", "-c", "echo out; echo err >&2")
    assert ok.state == "completed" and ok.exit_code == 0
    assert logs(cluster, ok.id) == "out\n"
    assert logs(cluster, ok.id, "stderr") == "err\n"
    [bad] = run(cluster, "sh", "-c", "exit 7")
    assert bad.state == "failed" and bad.exit_code == 7
    with cluster.client() as c:
        history = c.task(bad.id).history
    assert [h.target for h in history] == ["pending", "assigning", "running", "failed"]


def test_env_mounts_and_workdir(cluster: Cluster, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("from host\n")
    [t] = run(
        cluster,
        "sh",
        "-c",
        "cat /data/in.txt; echo $GREETING; pwd; echo made > /data/out.txt",
        env={"GREETING": "hello"},
        workdir="/tmp",
        mounts=[Mount(source=str(tmp_path), target="/data")],
    )
    assert t.state == "completed", t.error
    assert logs(cluster, t.id).splitlines() == ["from host", "hello", "/tmp"]
    assert (tmp_path / "out.txt").read_text() == "made\n"


def test_read_only_mount_refuses_writes(cluster: Cluster, tmp_path: Path) -> None:
    [t] = run(cluster, "sh", "-c", "echo x > /data/f", mounts=[Mount.parse(f"{tmp_path}:/data:ro")])
    assert t.state == "failed"
    assert "Read-only" in logs(cluster, t.id, "stderr")


def test_default_mounts_and_task_env(cluster: Cluster) -> None:
    [t] = run(
        cluster,
        "sh",
        "-c",
        "test -d /local_temp && echo $KAWA_LOCAL_TEMP $KAWA_TASK_ID",
        targets=["node2"],
    )
    assert t.state == "completed" and t.node == "node2"
    assert logs(cluster, t.id).split() == ["/local_temp", t.id]


def test_memory_limit_kills_with_oom(cluster: Cluster) -> None:
    [t] = run(
        cluster, "python3", "-c", "b = bytearray(400 * 1000 * 1000); print(len(b))", memory="64M"
    )
    assert t.state == "oom_killed", (t.state, t.error)
    assert t.exit_code == 137


def test_cpu_limit_visible_in_cgroup(cluster: Cluster) -> None:
    script = (
        "if [ -f /sys/fs/cgroup/cpu.max ]; then cat /sys/fs/cgroup/cpu.max; "
        "else echo $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) "
        "$(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us); fi"
    )
    [t] = run(cluster, "sh", "-c", script, cores=1)
    quota, period = logs(cluster, t.id).split()
    assert int(quota) == int(period), "1 core = one period of quota"


def test_containers_carry_cluster_node_and_task_labels(cluster: Cluster) -> None:
    with cluster.client() as c:
        [t] = c.submit(TaskSpec(command=["sleep", "30"], targets=["node1"])).tasks
        eventually(lambda: c.task(t.id).state == "running", what="running")
        [container] = cluster.containers(task=t.id)
        assert container.labels["kawa.node"] == "node1"
        assert container.labels["kawa.cluster"] == c.health()["cluster_id"]
        c.act(t.id, TaskAction.KILL)
        [final] = c.wait([t.id], timeout=60)
    assert final.state == "killed"
    eventually(lambda: not cluster.containers(task=t.id), what="container removed")


def test_pause_and_resume_freeze_the_container(cluster: Cluster) -> None:
    with cluster.client() as c:
        [t] = c.submit(TaskSpec(command=["sh", "-c", "sleep 2; echo done"])).tasks
        eventually(lambda: c.task(t.id).state == "running", what="running")
        assert c.act(t.id, TaskAction.PAUSE).state == "paused"
        [container] = cluster.containers(task=t.id)
        container.reload()
        assert container.status == "paused"
        node = c.node(c.task(t.id).node or "?")
        assert node.held.cores >= 1, "a paused task keeps its cores"
        assert c.act(t.id, TaskAction.RESUME).state == "running"
        [final] = c.wait([t.id], timeout=60)
    assert final.state == "completed"
    assert logs(cluster, t.id) == "done\n"


def test_timeout_ends_task_as_timed_out(cluster: Cluster) -> None:
    [t] = run(cluster, "sleep", "60", timeout="1s")
    assert t.state == "timed_out"
    assert "timed out" in (t.error or "")


def test_queue_waits_for_cores_then_runs(cluster: Cluster) -> None:
    with cluster.client() as c:
        blockers = c.submit(TaskSpec(command=["sleep", "60"], cores=2, targets=["node1"])).tasks
        eventually(lambda: c.task(blockers[0].id).state == "running", what="blocker running")
        [queued] = c.submit(TaskSpec(command=["echo", "finally"], targets=["node1"])).tasks
        waiting = eventually(
            lambda: when(reason := c.task(queued.id).waiting_reason or "", "node1" in reason),
            what="a waiting reason naming node1",
        )
        assert c.task(queued.id).state == "pending"
        assert "node1" in waiting
        c.act(blockers[0].id, TaskAction.KILL)
        [final] = c.wait([queued.id], timeout=60)
    assert final.state == "completed"
    assert logs(cluster, final.id) == "finally\n"


def test_batch_over_two_targets(cluster: Cluster) -> None:
    with cluster.client() as c:
        result = c.submit(
            TaskSpec(
                command=["sh", "-c", 'echo $KAWA_NODE; [ "$KAWA_NODE" = node1 ]'],
                targets=["node1", "node2"],
            )
        )
        assert len({t.batch_id for t in result.tasks}) == 1
        final = c.wait([t.id for t in result.tasks], timeout=60)
    by_node = {t.node: t for t in final}
    assert by_node["node1"].state == "completed"
    assert by_node["node2"].state == "failed" and by_node["node2"].exit_code == 1
    r = cluster.cli("task", "wait", *[t.id for t in final])
    assert r.returncode == 1, r.stdout + r.stderr


@pytest.mark.parametrize("prefix_len", [14, 18])
def test_ids_accepted_by_unique_prefix(cluster: Cluster, prefix_len: int) -> None:
    [t] = run(cluster, "true")
    with cluster.client() as c:
        assert c.task(t.id[:prefix_len]).id == t.id
