"""A runner frozen (SIGSTOP) past the node timeout, then resumed (SIGCONT): its node
goes offline and its tasks ``lost`` within the timeout, they are ``running`` again as
soon as it answers, and nothing ran twice."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from kawa.protocol.tasks import TaskSpec
from tests.integration.cluster import Cluster, eventually
from tests.reliability.conftest import MakeCluster

HEARTBEAT = 2.0
"""The product default: the runner's first heartbeat after SIGCONT must not wait one."""
NODE_TIMEOUT = 4.0
DETECTION_SLACK = 2.0
"""How much later than ``NODE_TIMEOUT`` a frozen runner may be seen: the host checks
every ``NODE_TIMEOUT / 20`` s (0.2 s here) and this test polls every 50 ms; the rest
absorbs a loaded 2-core machine delaying the host's loop and its SQLite commit."""
RETURN_TARGET = 2.0
"""Seconds within which a returning runner's tasks are ``running`` again."""
TASKS = 3
SCRIPT = (
    "mktemp /shared/markers/$KAWA_TASK_ID.XXXXXX >/dev/null; echo start; "
    "while [ ! -e /shared/release ]; do sleep 0.1; done; echo end"
)


def states(cluster: Cluster, ids: list[str]) -> list[str]:
    with cluster.client() as c:
        return [c.task(i).state.value for i in ids]


@pytest.mark.timeout(240)
def test_frozen_runner_is_lost_then_back(make_cluster: MakeCluster, tmp_path: Path) -> None:
    cluster = make_cluster(heartbeat_interval=HEARTBEAT, node_timeout=NODE_TIMEOUT)
    shared = tmp_path / "shared"
    cluster.add_runner("solo", cores=4, shared_dir=shared)
    data = shared / "shared_data"
    (data / "markers").mkdir(parents=True)
    with cluster.client() as c:
        ids = [c.submit(TaskSpec(command=["sh", "-c", SCRIPT])).tasks[0].id for _ in range(TASKS)]
    eventually(lambda: states(cluster, ids) == ["running"] * TASKS, 60, "tasks running")

    frozen = time.monotonic()
    cluster.freeze_runner("solo")
    try:
        eventually(lambda: states(cluster, ids) == ["lost"] * TASKS, 30, "tasks lost")
        to_lost = time.monotonic() - frozen
        assert cluster.node_status("solo") == "offline"
    finally:
        resumed = time.monotonic()
        cluster.thaw_runner("solo")
    eventually(lambda: states(cluster, ids) == ["running"] * TASKS, 30, "tasks running again")
    to_running = time.monotonic() - resumed
    assert cluster.node_status("solo") == "online"
    # Silent since at most the moment it froze, the node is offline no later than
    # NODE_TIMEOUT plus the slack explained above.
    assert to_lost <= NODE_TIMEOUT + DETECTION_SLACK, f"lost {to_lost:.2f}s after SIGSTOP"
    # The target itself (measured up to one 50 ms poll late).
    assert to_running <= RETURN_TARGET, f"running {to_running:.2f}s after SIGCONT"

    # Nothing started twice: one container and one marker per task.
    assert sorted(c.labels["kawa.task"] for c in cluster.containers()) == sorted(ids)
    (data / "release").touch()
    with cluster.client() as c:
        c.wait(ids, timeout=60)
        final = [c.task(i) for i in ids]  # with their history (events carry none)
        assert [(v.state.value, v.exit_code) for v in final] == [("completed", 0)] * TASKS
        for v in final:
            assert [h.target for h in v.history][-3:] == ["lost", "running", "completed"]
        assert [b"".join(c.logs(i)) for i in ids] == [b"start\nend\n"] * TASKS
    runs = Counter(p.name.split(".", 1)[0] for p in (data / "markers").iterdir())
    assert runs == Counter(dict.fromkeys(ids, 1))
    eventually(lambda: not cluster.containers(), 30, "containers removed")
    print(f"\nfreeze: lost {to_lost:.2f}s after SIGSTOP, running {to_running:.2f}s after SIGCONT")
