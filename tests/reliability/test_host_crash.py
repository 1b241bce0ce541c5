"""The host killed outright (SIGKILL) with hundreds of short tasks queued and running,
then started again on the same database: every task completes, none runs twice.

300 container tasks of about 0.2 s each on one runner offering 4 cores: on a loaded
2-core machine Docker starts 3 to 5 a second, so the run takes one to two minutes.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from kawa.protocol.tasks import TaskSpec
from tests.integration.cluster import eventually
from tests.reliability.conftest import MakeCluster

TASKS = 300
# Each run of a task leaves a file of its own (mktemp): two runs of one task, two files.
SCRIPT = (
    'echo "task $KAWA_TASK_ID"; mktemp /shared/markers/$KAWA_TASK_ID.XXXXXX >/dev/null; sleep 0.2'
)


def runs_per_task(markers: Path) -> Counter[str]:
    return Counter(p.name.split(".", 1)[0] for p in markers.iterdir())


@pytest.mark.timeout(600)
def test_host_killed_mid_queue_loses_and_repeats_nothing(
    make_cluster: MakeCluster, tmp_path: Path
) -> None:
    cluster = make_cluster()
    shared = tmp_path / "shared"
    cluster.add_runner("r1", cores=4, shared_dir=shared)
    markers = shared / "shared_data" / "markers"
    markers.mkdir(parents=True)
    started = time.monotonic()
    with cluster.client() as c:
        spec = TaskSpec(command=["sh", "-c", SCRIPT])
        ids = [t.id for _ in range(TASKS) for t in c.submit(spec).tasks]
    assert len(set(ids)) == TASKS

    # Kill it with a fifth of the tasks run (some done, some running, most queued), at
    # a moment it is dispatching: a task it has placed but not yet heard start.
    eventually(lambda: len(runs_per_task(markers)) >= TASKS // 5, 240, "a fifth run")
    with cluster.client() as c:
        assigning = eventually(lambda: c.tasks(states=["assigning"]), 60, "a dispatch")
    cluster.kill_host()
    ran_before = len(runs_per_task(markers))
    assert ran_before < TASKS, "every task ran before the host was killed: nothing tested"
    # The runner goes on without the host: what it runs ends and is removed, and the
    # endings wait in its journal for the host to come back.
    eventually(lambda: not cluster.containers(), 60, "the runner to finish its tasks")
    cluster.restart_host()

    def all_settled() -> Counter[str] | None:
        with cluster.client() as c:
            states = Counter(t.state.value for t in c.tasks(limit=TASKS + 100))
        return states if states["completed"] == TASKS else None

    eventually(all_settled, 400, "every task completed")
    elapsed = time.monotonic() - started
    with cluster.client() as c:
        views = {v.id: v for v in c.tasks(limit=TASKS + 100)}
        assert {i: (views[i].state.value, views[i].exit_code) for i in ids} == dict.fromkeys(
            ids, ("completed", 0)
        )
        # Logs are read through the restarted host (it asks the runner for them).
        logs = {i: b"".join(c.logs(i)).decode() for i in ids}
    assert runs_per_task(markers) == Counter(dict.fromkeys(ids, 1))
    assert logs == {i: f"task {i}\n" for i in ids}
    eventually(lambda: not cluster.containers(), 60, "no container left")
    with cluster.client() as c:  # how the dispatches cut short were settled (a figure)
        causes = [h.cause for t in assigning for h in c.task(t.id).history]
    settled = Counter(c for c in causes if "host" in c)
    print(f"\n{TASKS} tasks, host killed after {ran_before} had run: {elapsed:.1f}s; {settled}")
