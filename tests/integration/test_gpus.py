"""GPU inventory, accounting and placement with recorded GPU inventories.

What is real here and what is recorded: the runners, host, database and Docker are
real; the GPUs are not. Each runner reports a recorded inventory (tests/data/gpus/*.json)
through the same probe interface NVML sits behind, and this machine has neither GPUs nor
the NVIDIA container runtime, so Docker cannot start a container that asks for GPUs.
The tests therefore check what the scheduler holds and decides (``assigning`` /
``pending`` / the node's held GPU ids) and that a GPU task is handed to Docker with its
GPUs; they do not run anything on a GPU. Reading real GPUs through NVML needs a GPU
machine and is not exercised here.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kawa.client import KawaError
from kawa.core.task_states import TaskState
from kawa.host.app import Host, prepare_database, register_environment
from kawa.host.auth import Principal
from kawa.protocol.nodes import NodeInventory, NodeRegistration
from kawa.protocol.runner_api import ExitKind, TaskReport
from kawa.protocol.tasks import TaskSpec, TaskView
from kawa.runner.gpus import RecordedGpus, default_probe
from kawa.settings import HostConfig
from tests.conftest import BASE_IMAGE
from tests.integration.cluster import Cluster, eventually, when
from tests.support import submit, view

GPUS = Path(__file__).parents[1] / "data" / "gpus"
A100 = GPUS / "a100-80gb-x4.json"
H100 = GPUS / "h100-80gb-x8.json"
GIB = 2**30


# -- the recorded inventories themselves ----------------------------------------------
def test_recorded_inventories_load_through_the_probe() -> None:
    a100 = default_probe(A100).read()
    assert [g.index for g in a100] == [0, 1, 2, 3]
    assert {g.name for g in a100} == {"NVIDIA A100-SXM4-80GB"}
    assert {g.memory_total for g in a100} == {80 * GIB}
    assert len({g.uuid for g in a100}) == 4
    assert a100[1].utilization == 55.0 and a100[3].temperature == 71.0
    h100 = RecordedGpus(H100).read()
    assert [g.index for g in h100] == list(range(8))
    assert {g.name for g in h100} == {"NVIDIA H100 80GB HBM3"}


# -- a real cluster whose runners report recorded GPUs ------------------------------------
@pytest.fixture(scope="module")
def gpu_cluster(
    docker_available: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    c = Cluster(Path(tmp_path_factory.mktemp("gpus")), BASE_IMAGE)
    try:
        c.start_host()
        c.add_runner("a100", cores=2, gpu_inventory=A100)
        c.add_runner("h100", cores=2, gpu_inventory=H100)
        yield c
    finally:
        c.close()


def ended(c: Cluster, task_id: str) -> TaskView:
    with c.client() as client:
        client.wait([task_id], timeout=60)
        return client.task(task_id)


def scrape(c: Cluster) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``/metrics`` as {(sample name, sorted labels): value}."""
    token = {"Authorization": f"Bearer {c.token}"}  # any role reads /metrics
    response = httpx.get(f"{c.url}/metrics", headers=token, timeout=10)
    assert response.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def assert_no_gpu_runtime_failure(task: TaskView) -> None:
    """A GPU task reached Docker: on this machine (no NVIDIA runtime) Docker refuses it;
    on a GPU machine it would complete."""
    if task.state == "failed":
        assert "docker could not start the task" in (task.error or ""), task.error
        assert "gpu" in (task.error or "").lower(), task.error
    else:
        assert task.state == "completed", (task.state, task.error)


def test_nodes_and_health_report_the_recorded_gpus(gpu_cluster: Cluster) -> None:
    with gpu_cluster.client() as c:
        nodes = {n.name: n for n in c.nodes()}
        assert [g.name for g in nodes["a100"].inventory.gpus] == ["NVIDIA A100-SXM4-80GB"] * 4
        assert len(nodes["h100"].inventory.gpus) == 8
        health = eventually(
            lambda: when(h := c.node_health("a100"), h.node.usage and h.node.usage.gpus),
            10,
            "a heartbeat with GPUs",
        )
    assert [(g.index, g.utilization) for g in health.node.usage.gpus] == [  # type: ignore[union-attr]
        (0, 0.0),
        (1, 55.0),
        (2, 3.0),
        (3, 100.0),
    ]
    listed = gpu_cluster.cli("node", "list")
    assert listed.returncode == 0, listed.stderr
    assert "0/4" in listed.stdout and "0/8" in listed.stdout
    shown = gpu_cluster.cli("node", "health", "a100")
    assert shown.returncode == 0, shown.stderr
    assert "gpu 3" in shown.stdout and "NVIDIA A100-SXM4-80GB" in shown.stdout
    assert "util 100%" in shown.stdout and "temp 71C" in shown.stdout

    metrics = scrape(gpu_cluster)
    gpu1 = (("gpu", "1"), ("node", "a100"))
    assert metrics[("kawa_gpu_utilization_percent", gpu1)] == 55.0
    assert metrics[("kawa_gpu_memory_total_bytes", gpu1)] == 80 * GIB
    assert metrics[("kawa_gpu_temperature_celsius", gpu1)] == 54.0
    assert metrics[("kawa_gpu_power_watts", gpu1)] == pytest.approx(212.3)
    assert metrics[("kawa_node_gpus", (("node", "h100"),))] == 8


def test_gpu_requests_no_node_could_ever_hold_are_refused(gpu_cluster: Cluster) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        (dict(targets=["a100::4"]), "unknown GPU id 4 on node 'a100'; its GPUs: 0, 1, 2, 3"),
        (dict(targets=["a100"], gpus=5), "needs 5 GPUs but node 'a100' has 4"),
        (dict(gpus=9), "no node has 9 GPUs (most: 8)"),
    ]
    for spec, message in cases:
        with pytest.raises(KawaError) as exc:
            submit(gpu_cluster, **spec)
        assert exc.value.status == 400, spec
        assert message in str(exc.value)
    refused = gpu_cluster.cli("task", "submit", "--gpus", "9", "--", "true")
    assert refused.returncode != 0
    assert "no node has 9 GPUs" in refused.stdout + refused.stderr


class SlowRegistry:
    """A registry endpoint on 127.0.0.1 that answers image manifest requests only when
    released (with 404). A task whose image comes from it stays ``assigning`` while the
    real runner waits for Docker's pull: the way a first pull of a large image holds a
    task's resources, made to last as long as the test needs."""

    def __init__(self) -> None:
        self.asked = threading.Event()
        self.release = threading.Event()
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/v2/":
                    registry.asked.set()
                    registry.release.wait(60)
                self.send_response(200 if self.path == "/v2/" else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_HEAD = do_GET

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.image = f"127.0.0.1:{self.server.server_address[1]}/kawa-test/slow:1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> SlowRegistry:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def test_gpu_ids_are_held_from_assigning_and_a_waiter_is_placed_when_they_free(
    gpu_cluster: Cluster,
) -> None:
    with SlowRegistry() as registry:
        first = submit(gpu_cluster, targets=["a100::0,1"], image=registry.image)
        eventually(registry.asked.is_set, 30, "the runner to pull the first task's image")
        held = view(gpu_cluster, first.id)
        assert (held.state, held.gpu_ids) == ("assigning", [0, 1])
        with gpu_cluster.client() as c:
            assert c.node("a100").held.gpu_ids == [0, 1]
        metrics = scrape(gpu_cluster)
        assert metrics[("kawa_node_held_gpus", (("node", "a100"),))] == 2
        assert [
            metrics[("kawa_gpu_held", (("gpu", str(i)), ("node", "a100")))] for i in range(4)
        ] == [
            1,
            1,
            0,
            0,
        ]

        second = submit(gpu_cluster, targets=["a100::1"])
        waiting = eventually(
            lambda: when(t := view(gpu_cluster, second.id), t.waiting_reason != "queued"),
            15,
            "the scheduler to look at the second task",
        )
        assert waiting.state == "pending"
        assert waiting.waiting_reason == "GPU 1 on a100 is in use"

        # --gpus 2 on the same node picks the two free ids, not the held ones
        third = ended(gpu_cluster, submit(gpu_cluster, targets=["a100"], gpus=2).id)
        assert third.gpu_ids == [2, 3]
        assert "assigning" in [h.target for h in third.history]
        assert_no_gpu_runtime_failure(third)
        assert view(gpu_cluster, second.id).state == "pending"
        assert view(gpu_cluster, first.id).state == "assigning"
    # released: the pull fails, the first task ends and frees GPUs 0 and 1
    first_done = ended(gpu_cluster, first.id)
    assert first_done.state == "failed"
    assert "could not be pulled" in (first_done.error or "")
    second_done = ended(gpu_cluster, second.id)
    assert second_done.gpu_ids == [1]
    assert [h.target for h in second_done.history][:2] == ["pending", "assigning"]
    assert_no_gpu_runtime_failure(second_done)
    placed_at = second_done.history[1].at
    assert first_done.finished_at is not None and placed_at >= first_done.finished_at
    with gpu_cluster.client() as c:
        assert eventually(lambda: c.node("a100").held.gpu_ids == [], 10, "GPUs released")


def test_auto_picked_gpus_go_to_a_node_that_has_them(gpu_cluster: Cluster) -> None:
    task = ended(gpu_cluster, submit(gpu_cluster, gpus=6).id)
    assert (task.node, task.gpu_ids) == ("h100", [0, 1, 2, 3, 4, 5])
    assert_no_gpu_runtime_failure(task)


# -- accounting through the host's scheduler and store (no runner, no Docker) -----------
def test_a_paused_gpu_task_keeps_its_gpus(tmp_path: Path) -> None:
    """The host's own services on a real SQLite database: a task the runner reports as
    paused still holds its GPUs, so a task asking for one of them waits."""
    config = HostConfig(data_dir=tmp_path, cluster_secret="s", heartbeat_interval=0.5)
    sessions = prepare_database(config)
    register_environment(sessions, config.default_container, BASE_IMAGE)
    host = Host(config, sessions)
    admin = Principal("admin", "admin")
    try:
        inventory = NodeInventory(cores=8, memory=64 * GIB, gpus=RecordedGpus(A100).read())
        host.nodes.register(
            NodeRegistration(name="gpu4", url="http://127.0.0.1:9", inventory=inventory)
        )

        def report(task_id: str, state: str, **extra: object) -> None:
            now = datetime.now(UTC)
            host.reports.handle(
                TaskReport(task_id=task_id, node="gpu4", state=state, at=now, **extra)  # type: ignore[arg-type]
            )

        [paused] = host.tasks.submit(
            TaskSpec(command=["train"], targets=["gpu4::0,1"]), admin
        ).tasks
        assert [j.order.gpu_ids for j in host.scheduler.schedule_once()] == [[0, 1]]
        report(paused.id, "running")
        report(paused.id, "paused")
        assert host.ledger.view(paused.id).state is TaskState.PAUSED
        assert host.nodes.get("gpu4").held.gpu_ids == [0, 1]

        [blocked] = host.tasks.submit(TaskSpec(command=["eval"], targets=["gpu4::1"]), admin).tasks
        [other] = host.tasks.submit(TaskSpec(command=["eval"], gpus=2), admin).tasks
        jobs = host.scheduler.schedule_once()
        assert [(j.order.task_id, j.order.gpu_ids) for j in jobs] == [(other.id, [2, 3])]
        waiting = host.ledger.view(blocked.id)
        assert (waiting.state, waiting.waiting_reason) == ("pending", "GPU 1 on gpu4 is in use")

        report(paused.id, "ended", exit_kind=ExitKind.KILLED, exit_code=137)
        jobs = host.scheduler.schedule_once()
        assert [(j.order.task_id, j.order.gpu_ids) for j in jobs] == [(blocked.id, [1])]
    finally:
        asyncio.run(host.link.close())
