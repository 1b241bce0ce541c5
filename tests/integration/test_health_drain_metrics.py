"""Node health history, draining and the Prometheus endpoint, on a real cluster.

Node ``zones`` reads a recorded sysfs tree that splits this machine's CPUs 0 and 1 into
two NUMA zones (its per-zone CPU use is measured for real on those CPUs); node ``plain``
reads the machine's own sysfs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kawa.protocol.tasks import TaskAction, TaskView
from tests.conftest import BASE_IMAGE
from tests.integration.cluster import Cluster, eventually, when
from tests.support import submit, view

TREE = Path(__file__).parents[1] / "data" / "sysfs" / "two-zones-cpu0-cpu1"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def cluster2(docker_available: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(Path(tmp_path_factory.mktemp("health")), BASE_IMAGE)
    try:
        c.start_host()
        c.add_runner("zones", cores=2, sysfs_root=TREE)
        c.add_runner("plain", cores=2)
        yield c
    finally:
        c.close()


def finish(c: Cluster, task_id: str) -> TaskView:
    with c.client() as client:
        [done] = client.wait([task_id], timeout=60)
    return done


def scrape(c: Cluster) -> tuple[Samples, str]:
    response = httpx.get(f"{c.url}/metrics", headers=bearer(c), timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    return samples, response.text


def bearer(c: Cluster) -> dict[str, str]:
    """A token of any role reads /metrics (unless the host's metrics_public is on)."""
    return {"Authorization": f"Bearer {c.token}"}


def node_label(name: str) -> tuple[tuple[str, str], ...]:
    return (("node", name),)


# -- health -----------------------------------------------------------------------------
def test_health_keeps_a_history_of_heartbeats_with_numa_usage(cluster2: Cluster) -> None:
    with cluster2.client() as c:
        health = eventually(
            lambda: when(h := c.node_health("zones"), len(h.history) >= 4),
            15,
            "four heartbeats in the history",
        )
        plain = eventually(
            lambda: when(h := c.node_health("plain"), h.history), 15, "a plain heartbeat"
        )
    stamps = [s.at for s in health.history]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    for sample in health.history:
        assert [z.id for z in sample.numa] == [0, 1]
        for zone in sample.numa:
            assert zone.cpu_percent is not None and 0.0 <= zone.cpu_percent <= 100.0
        assert 0.0 <= sample.cpu_percent <= 100.0 and sample.memory_used > 0
        assert len(sample.load) == 3
    assert health.node.usage is not None and health.node.usage.numa
    assert [z.id for z in plain.history[-1].numa] == [0]

    shown = cluster2.cli("node", "health", "zones")
    assert shown.returncode == 0, shown.stderr
    for needle in ("numa 0", "numa 1", "cpus 0 (0 pinned)", "cpus 1 (0 pinned)", "samples over"):
        assert needle in shown.stdout, (needle, shown.stdout)
    as_json = cluster2.cli("node", "health", "zones", "--json")
    assert as_json.returncode == 0, as_json.stderr
    [report] = json.loads(as_json.stdout)
    assert report["node"]["name"] == "zones" and len(report["history"]) >= 4
    assert [z["id"] for z in report["history"][-1]["numa"]] == [0, 1]


# -- drain ------------------------------------------------------------------------------
def test_drained_node_takes_no_new_work_and_finishes_what_it_runs(cluster2: Cluster) -> None:
    running = submit(cluster2, "sh", "-c", "sleep 1.5; echo finished", targets=["zones"])
    eventually(lambda: view(cluster2, running.id).state == "running", 30, "work on zones")
    drained = cluster2.cli("node", "drain", "zones")
    try:
        assert drained.returncode == 0, drained.stderr
        assert drained.stdout.strip() == "zones: draining"
        targeted = submit(cluster2, "echo", "later", targets=["zones"])
        waiting = eventually(
            lambda: when(t := view(cluster2, targeted.id), t.waiting_reason != "queued"),
            15,
            "the scheduler to look at the targeted task",
        )
        assert waiting.state == "pending"
        assert waiting.waiting_reason == "zones is offline or draining"
        elsewhere = finish(cluster2, submit(cluster2, "echo", "elsewhere").id)
        assert (elsewhere.state, elsewhere.node) == ("completed", "plain")

        done = finish(cluster2, running.id)
        assert (done.state, done.exit_code) == ("completed", 0)
        with cluster2.client() as c:
            assert b"".join(c.logs(running.id)) == b"finished\n"
            assert c.node("zones").status == "draining"
        still = view(cluster2, targeted.id)
        assert (still.state, still.waiting_reason) == ("pending", "zones is offline or draining")
    finally:
        undrained = cluster2.cli("node", "undrain", "zones")
    assert undrained.returncode == 0, undrained.stderr
    assert undrained.stdout.strip() == "zones: online"
    later = finish(cluster2, targeted.id)
    assert (later.state, later.node) == ("completed", "zones")


# -- Prometheus -------------------------------------------------------------------------
def test_metrics_scrape_reports_nodes_tasks_queue_and_scheduling(cluster2: Cluster) -> None:
    before, _ = scrape(cluster2)
    with cluster2.client() as c:
        c.drain("zones", True)
    try:
        queued = [submit(cluster2, "true", targets=["zones"]) for _ in range(2)]
        eventually(
            lambda: all(view(cluster2, t.id).waiting_reason != "queued" for t in queued),
            15,
            "the scheduler to see the queued tasks",
        )
        after, text = scrape(cluster2)
        with cluster2.client() as c:
            pending = c.tasks(states=["pending"])
            completed = c.tasks(states=["completed"])
    finally:
        with cluster2.client() as c:
            for t in queued:
                c.act(t.id, TaskAction.KILL)
            c.drain("zones", False)

    assert {t.id for t in queued} <= {t.id for t in pending}
    assert after[("kawa_queue_length", ())] == len(pending) >= 2
    assert after[("kawa_tasks", (("state", "pending"),))] == len(pending)
    assert after[("kawa_tasks", (("state", "completed"),))] == len(completed)
    assert (
        after[("kawa_tasks_submitted_total", ())] == before[("kawa_tasks_submitted_total", ())] + 2
    )

    zones, plain = node_label("zones"), node_label("plain")
    assert after[("kawa_node_cores", zones)] == 2
    assert after[("kawa_node_numa_cpus", (("node", "zones"), ("numa", "1")))] == 1
    assert after[("kawa_node_numa_memory_bytes", (("node", "zones"), ("numa", "0")))] == 8 * 2**30
    assert after[("kawa_node_status", (("node", "zones"), ("status", "draining")))] == 1
    assert after[("kawa_node_status", (("node", "plain"), ("status", "online")))] == 1
    assert after[("kawa_node_memory_bytes", plain)] > 0
    assert after[("kawa_node_held_cores", zones)] == 0
    assert 0.0 <= after[("kawa_node_cpu_percent", zones)] <= 100.0
    for zone in ("0", "1"):
        assert ("kawa_node_numa_cpu_percent", (("node", "zones"), ("numa", zone))) in after
    assert (("kawa_node_load", (("node", "plain"), ("period", "1m")))) in after

    passes = after[("kawa_scheduling_pass_seconds_count", ())]
    assert passes > before[("kawa_scheduling_pass_seconds_count", ())]
    assert after[("kawa_scheduling_pass_seconds_sum", ())] > 0
    buckets = sorted(
        (float(dict(labels)["le"]), value)
        for (name, labels), value in after.items()
        if name == "kawa_scheduling_pass_seconds_bucket"
    )
    assert buckets[-1] == (float("inf"), passes)
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)
    assert "# TYPE kawa_scheduling_pass_seconds histogram" in text
