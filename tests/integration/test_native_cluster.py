"""Native tasks through a real host and runner: the whole path, not only the executor."""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest

from kawa.protocol.tasks import TaskAction, TaskSpec
from tests.integration.cluster import Cluster, eventually

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 and os.environ.get("CI") != "true",
    reason="native tasks need root for cgroups (and must run under CI=true)",
)


def test_native_task_runs_in_its_cgroup_with_output(cluster: Cluster) -> None:
    script = "grep -E 'cpu,cpuacct|cpu:|^0::' /proc/self/cgroup | head -1; echo id=$KAWA_TASK_ID"
    r = cluster.cli(
        "task", "submit", "--native", "--wait", "--target", "node1", "--", "sh", "-c", script
    )
    assert r.returncode == 0, r.stdout + r.stderr
    with cluster.client() as c:
        [task] = c.tasks(node="node1", limit=1)
        assert task.native and task.state == "completed"
        out = b"".join(c.logs(task.id)).decode()
    assert f"id={task.id}" in out
    assert f"/kawa/node1/{task.id}" in out.splitlines()[0]


def test_container_null_is_another_spelling_of_native(cluster: Cluster, tmp_path: Path) -> None:
    marker = tmp_path / "only-on-the-node"  # a container would not see this file
    marker.write_text("node file\n")
    r = cluster.cli(
        "task", "submit", "--container", "NULL", "--wait", "--json", "--", "cat", str(marker)
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert '"native": true' in r.stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--gpus", "1"], "cannot be given GPUs"),
        (["--target", "node1::0"], "cannot be given GPUs"),
        (["--privileged"], "--privileged applies to containers"),
        (["--mount", "/tmp:/data"], "--mount applies to containers"),
        (["--network", "bridge"], "--network applies to containers"),
    ],
)
def test_container_only_options_are_refused(
    cluster: Cluster, extra: list[str], message: str
) -> None:
    with cluster.client() as c:
        before = [t.id for t in c.tasks(limit=10000)]
    r = cluster.cli("task", "submit", "--native", *extra, "--", "true")
    assert r.returncode != 0
    assert message in r.stderr and "Traceback" not in r.stderr
    with cluster.client() as c:
        assert [t.id for t in c.tasks(limit=10000)] == before


def test_runner_that_forbids_native_fails_the_task_clearly(fresh_cluster: Cluster) -> None:
    fresh_cluster.runner_env["KAWA_RUNNER_ALLOW_NATIVE"] = "false"
    fresh_cluster.add_runner("strict")
    with fresh_cluster.client() as c:
        [t] = c.submit(TaskSpec(command=["true"], native=True)).tasks
        [done] = c.wait([t.id], timeout=60)
    assert done.state == "failed"
    assert "does not accept native tasks" in (done.error or "")


def test_native_kill_ends_the_process_tree(cluster: Cluster) -> None:
    with cluster.client() as c:
        [t] = c.submit(
            TaskSpec(command=["sh", "-c", "sleep 300 & sleep 300"], native=True, targets=["node2"])
        ).tasks
        eventually(lambda: c.task(t.id).state == "running", what="running")
        c.act(t.id, TaskAction.KILL)
        [done] = c.wait([t.id], timeout=60)
    assert done.state == "killed"
    marker = f"KAWA_TASK_ID={t.id}"

    def tagged() -> int:
        count = 0
        for proc in psutil.process_iter():
            try:
                environ = proc.environ()
            except psutil.Error:
                continue
            count += f"KAWA_TASK_ID={environ.get('KAWA_TASK_ID')}" == marker
        return count

    eventually(lambda: tagged() == 0, 20, "no process of the task left")


def test_unknown_native_user_is_a_clear_start_failure(fresh_cluster: Cluster) -> None:
    fresh_cluster.runner_env["KAWA_RUNNER_NATIVE_USER"] = "no-such-user-kawa"
    fresh_cluster.add_runner("nouser")
    with fresh_cluster.client() as c:
        [t] = c.submit(TaskSpec(command=["true"], native=True)).tasks
        [done] = c.wait([t.id], timeout=60)
    assert done.state == "failed"
    assert "no-such-user-kawa" in (done.error or "")
