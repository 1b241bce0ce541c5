"""NUMA pinning for real: Docker cpusets seen from inside the containers.

The runner reads its topology from a recorded sysfs tree that splits this machine's two
real CPUs into two zones (zone 0 = cpu 0, zone 1 = cpu 1, 8 GiB each), so a pinned
container must see exactly its zone's CPU. The tree's zone 1 is not a real memory node
here, so its tasks get no ``cpuset-mems`` (the executor only binds memory to NUMA nodes
the machine has); zone 0 is real and gets ``cpuset-mems=0``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kawa.client import KawaError
from kawa.protocol.tasks import TaskAction, TaskSpec, TaskView
from tests.conftest import BASE_IMAGE
from tests.integration.cluster import Cluster, eventually, when
from tests.support import submit
from tests.support import view as state_of

TREE = Path(__file__).parents[1] / "data" / "sysfs" / "two-zones-cpu0-cpu1"
NODE = "numa"
AFFINITY = (
    "import os, pathlib\n"
    "print(sorted(os.sched_getaffinity(0)))\n"
    "for f in ('/sys/fs/cgroup/cpuset/cpuset.cpus', '/sys/fs/cgroup/cpuset.cpus.effective'):\n"
    "    p = pathlib.Path(f)\n"
    "    if p.exists():\n"
    "        print(p.read_text().strip())\n"
    "        break\n"
)


@pytest.fixture(scope="module")
def numa_cluster(
    docker_available: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    if not {0, 1} <= os.sched_getaffinity(0):
        pytest.skip("needs CPUs 0 and 1 on this machine (the recorded zones name them)")
    c = Cluster(Path(tmp_path_factory.mktemp("numa")), BASE_IMAGE)
    try:
        c.start_host()
        c.add_runner(NODE, cores=2, sysfs_root=TREE)
        yield c
    finally:
        c.close()


def stdout(c: Cluster, task_id: str) -> list[str]:
    with c.client() as client:
        return b"".join(client.logs(task_id)).decode().split()


def finish(c: Cluster, task_id: str) -> TaskView:
    with c.client() as client:
        [done] = client.wait([task_id], timeout=60)
    return done


def test_runner_reports_the_recorded_zones(numa_cluster: Cluster) -> None:
    with numa_cluster.client() as c:
        node = c.node(NODE)
    assert [(z.id, z.cpus, z.memory) for z in node.inventory.numa] == [
        (0, [0], 8 * 2**30),
        (1, [1], 8 * 2**30),
    ]


def test_pinned_containers_see_only_their_zones_cpu(numa_cluster: Cluster) -> None:
    with numa_cluster.client() as c:
        batch = c.submit(
            TaskSpec(
                command=["python3", "-c", AFFINITY], targets=[f"{NODE}:0", f"{NODE}:1"], cores=1
            )
        )
        done = c.wait([t.id for t in batch.tasks], timeout=60)
    for zone, task in enumerate(done):
        assert task.state == "completed", (task.state, task.error)
        assert (task.numa, task.cpuset) == (zone, [zone])
        # affinity as the process sees it, then the cgroup's cpuset file
        assert stdout(numa_cluster, task.id) == [f"[{zone}]", str(zone)]


def test_two_pinned_tasks_on_one_zone_never_share_its_cpu(numa_cluster: Cluster) -> None:
    first = submit(numa_cluster, "sleep", "120", targets=[f"{NODE}:1"], cores=1)
    eventually(lambda: state_of(numa_cluster, first.id).state == "running", 30, "first runs")
    [container] = numa_cluster.containers(task=first.id)
    host_config = container.attrs["HostConfig"]
    assert host_config["CpusetCpus"] == "1"
    assert host_config["CpusetMems"] == ""  # zone 1 is not a real memory node here
    with numa_cluster.client() as c:
        assert c.node(NODE).held.pinned_cpus == [1]

    second = submit(numa_cluster, "python3", "-c", AFFINITY, targets=[f"{NODE}:1"], cores=1)
    waiting = eventually(
        lambda: when(
            t := state_of(numa_cluster, second.id),
            t.waiting_reason and "NUMA zone 1" in t.waiting_reason,
        ),
        15,
        "second task to wait for zone 1",
    )
    assert waiting.state == "pending"
    assert waiting.waiting_reason == f"needs 1 CPU of NUMA zone 1, 0 unpinned on {NODE}"

    # zone 0 is free: a task pinned there runs beside the first one
    other = finish(
        numa_cluster,
        submit(numa_cluster, "python3", "-c", AFFINITY, targets=[f"{NODE}:0"], cores=1).id,
    )
    assert other.state == "completed" and other.cpuset == [0]
    assert stdout(numa_cluster, other.id) == ["[0]", "0"]
    assert state_of(numa_cluster, first.id).state == "running"
    assert state_of(numa_cluster, second.id).state == "pending"

    with numa_cluster.client() as c:
        c.act(first.id, TaskAction.KILL)
    ended = finish(numa_cluster, first.id)
    assert ended.state == "killed"
    done = finish(numa_cluster, second.id)
    assert done.state == "completed" and done.cpuset == [1]
    assert stdout(numa_cluster, second.id) == ["[1]", "1"]
    assert [h.target for h in state_of(numa_cluster, second.id).history] == [
        "pending",
        "assigning",
        "running",
        "completed",
    ]
    assert ended.finished_at is not None and done.started_at is not None
    assert done.started_at >= ended.finished_at


def test_zone_the_node_lacks_or_too_small_is_refused(numa_cluster: Cluster) -> None:
    with numa_cluster.client() as c:
        with pytest.raises(KawaError) as exc:
            c.submit(TaskSpec(command=["true"], targets=[f"{NODE}:2"]))
        assert exc.value.status == 400
        assert f"unknown NUMA id 2 on node '{NODE}'; its NUMA zones: 0, 1" in str(exc.value)
        with pytest.raises(KawaError) as exc:
            c.submit(TaskSpec(command=["true"], targets=[f"{NODE}:1"], cores=2))
        assert exc.value.status == 400
        assert "NUMA zone 1" in str(exc.value) and "1 CPU" in str(exc.value)
