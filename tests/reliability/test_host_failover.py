"""Two hosts on one PostgreSQL database and a runner given both URLs: the leading host
is killed outright (SIGKILL) with tasks running and queued; the standby takes the lead
within 10 s, and every task, submitted before or after the kill, completes having run
exactly once. Each host's event stream shows the other's changes."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from kawa.client import KawaClient
from kawa.protocol.tasks import TaskSpec, TaskView
from tests.integration.cluster import eventually, free_port
from tests.postgres_support import fresh_database
from tests.reliability.conftest import MakeCluster

# Each run of a task leaves a file of its own (mktemp): two runs of one task, two files.
SCRIPT = 'echo "task $KAWA_TASK_ID"; mktemp /shared/markers/$KAWA_TASK_ID.XXXXXX >/dev/null; '
FAILOVER_LIMIT = 10.0


def runs_per_task(markers: Path) -> Counter[str]:
    return Counter(p.name.split(".", 1)[0] for p in markers.iterdir())


def health(url: str, token: str) -> dict[str, Any] | None:
    try:
        with KawaClient(url, token, timeout=5) as c:
            return c.health()
    except Exception:
        return None


def leading_metric(url: str, token: str) -> float:
    """The host's ``kawa_host_leading`` gauge."""
    text = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {token}"}).text
    [line] = [x for x in text.splitlines() if x.startswith("kawa_host_leading ")]
    return float(line.split()[1])


class Waiter(KawaClient):
    """A client that counts its task reads: ``wait`` reads the tasks once subscribed."""

    reads = 0

    def task(self, ref: str) -> TaskView:
        self.reads += 1
        return super().task(ref)


def submit(client: KawaClient, count: int, seconds: float) -> list[str]:
    spec = TaskSpec(command=["sh", "-c", SCRIPT + f"sleep {seconds}"])
    return [client.submit(spec).tasks[0].id for _ in range(count)]


@pytest.mark.timeout(400)
def test_standby_host_takes_over_when_the_leader_is_killed(
    make_cluster: MakeCluster, tmp_path: Path
) -> None:
    with fresh_database() as database:
        cluster = make_cluster(database_url=database)
        leader_url = cluster.url
        standby_url = f"http://127.0.0.1:{free_port()}"
        standby: subprocess.Popen[bytes] | None = None
        try:
            eventually(lambda: (health(leader_url, cluster.token) or {}).get("leading"), 15)
            standby = cluster.spawn_host(int(standby_url.rsplit(":", 1)[1]), "host-b.log")
            seen = eventually(lambda: health(standby_url, cluster.token), 30, "the standby")
            assert seen["leading"] is False and seen["cluster_id"] == cluster.cluster_id
            assert leading_metric(leader_url, cluster.token) == 1.0
            assert leading_metric(standby_url, cluster.token) == 0.0
            _run(cluster, leader_url, standby_url, tmp_path)
        finally:
            if standby is not None and standby.poll() is None:
                standby.send_signal(signal.SIGTERM)
                standby.wait(30)
            cluster.close()


def _run(cluster: Any, leader_url: str, standby_url: str, tmp_path: Path) -> None:
    both = f"{leader_url},{standby_url}"
    shared = tmp_path / "shared"
    cluster.runner_host_url = both
    cluster.add_runner("r1", cores=2, shared_dir=shared)
    markers = shared / "shared_data" / "markers"
    markers.mkdir(parents=True)

    # The standby serves the API: what is submitted there, the leader schedules, and
    # the standby's event stream tells (`wait` follows it) how they end.
    with KawaClient(standby_url, cluster.token) as on_standby:
        assert not on_standby.info().leading
        first = submit(on_standby, 2, 1)  # still running when `wait` subscribes
        ended = on_standby.wait(first, timeout=60)
        assert [t.state.value for t in ended] == ["completed", "completed"]

    # Tasks running and queued when the leader dies; a client waits for them on the
    # leader's event stream, and goes on with the other host's when the leader is gone.
    with KawaClient(both, cluster.token) as client, ThreadPoolExecutor(1) as pool:
        assert client.info().leading and client.url == leader_url
        before = submit(client, 6, 3)
        eventually(lambda: client.tasks(states=["running"]), 60, "a task running")
        waiter = Waiter(both, cluster.token)
        waiting = pool.submit(waiter.wait, before, 240)
        eventually(lambda: waiter.reads >= len(before), 30, "the waiter to subscribe")
        cluster.kill_host()
        killed = time.monotonic()
        eventually(
            lambda: (health(standby_url, cluster.token) or {}).get("leading"),
            FAILOVER_LIMIT,
            "the standby to lead",
        )
        failover = time.monotonic() - killed
        after = submit(client, 3, 0)  # the leader is gone: the client uses the other host
        assert client.url == standby_url

        ids = first + before + after

        def all_completed() -> bool:
            states = {i: client.task(i).state.value for i in ids}
            bad = {i: s for i, s in states.items() if s in ("failed", "lost", "killed")}
            assert not bad, f"tasks ended otherwise than completed: {bad}"
            return all(s == "completed" for s in states.values())

        eventually(all_completed, 180, "every task to complete")
        logs = {i: b"".join(client.logs(i)).decode() for i in ids}
        waited = waiting.result(60)
        assert [t.state.value for t in waited] == ["completed"] * len(before)
        assert waiter.url == standby_url
        waiter.close()
    assert runs_per_task(markers) == Counter(dict.fromkeys(ids, 1))
    assert logs == {i: f"task {i}\n" for i in ids}
    log = (cluster.root / "runner-r1.log").read_text()
    assert f"talking to the host at {standby_url}" in log
    print(f"\nfailover: the standby led {failover:.1f}s after the leader was killed")
