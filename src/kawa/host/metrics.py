"""Prometheus metrics at ``/metrics`` (text exposition format). A token of any role is
needed unless the host's ``metrics_public`` setting is on.

Everything but the scheduling-latency histogram is read at scrape time from the same
services the API uses (node views with their held resources and latest heartbeat, task
counts from the database), so a scrape always agrees with ``kawa node list`` and
``kawa task list``. Names start with ``kawa_``; byte values end in ``_bytes``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from kawa.core.task_states import TaskState
from kawa.host import deps
from kawa.protocol.nodes import GpuInfo, NodeStatus, NodeView
from kawa.store.models import Task

if TYPE_CHECKING:
    from kawa.host.app import Host

PASS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_LOAD_PERIODS = ("1m", "5m", "15m")


class ClusterCollector(Collector):
    """Node, GPU and task metrics, computed when Prometheus scrapes."""

    def __init__(self, host: Host) -> None:
        self.host = host

    def collect(self) -> Iterator[Metric]:
        yield from self._nodes(self.host.nodes.list())
        yield from self._tasks()

    # -- nodes ----------------------------------------------------------------------
    def _nodes(self, nodes: list[NodeView]) -> Iterator[Metric]:
        def gauge(name: str, doc: str, labels: tuple[str, ...] = ("node",)) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"kawa_node_{name}", doc, labels=list(labels))

        status = gauge("status", "1 for the node's current status", ("node", "status"))
        cores = gauge("cores", "Cores the node offers the scheduler")
        memory = gauge("memory_bytes", "Memory the node offers the scheduler")
        held_cores = gauge("held_cores", "Cores held by tasks placed on the node")
        held_memory = gauge("held_memory_bytes", "Memory held by tasks placed on the node")
        gpus = gauge("gpus", "GPUs the node has")
        held_gpus = gauge("held_gpus", "GPUs held by tasks placed on the node")
        running = gauge("running_tasks", "Tasks running on the node")
        heartbeat = gauge("last_heartbeat_timestamp_seconds", "Time of the last heartbeat")
        cpu = gauge("cpu_percent", "Machine CPU use at the last heartbeat")
        used = gauge("memory_used_bytes", "Machine memory in use at the last heartbeat")
        load = gauge("load", "Load average at the last heartbeat", ("node", "period"))
        temperature = gauge(
            "temperature_celsius", "Sensor temperature at the last heartbeat", ("node", "sensor")
        )
        numa_cpus = gauge("numa_cpus", "CPUs of a NUMA zone", ("node", "numa"))
        numa_memory = gauge("numa_memory_bytes", "Memory of a NUMA zone", ("node", "numa"))
        numa_pinned = gauge(
            "numa_pinned_cpus", "CPUs of a NUMA zone pinned by tasks", ("node", "numa")
        )
        numa_cpu = gauge("numa_cpu_percent", "Mean CPU use of a NUMA zone's CPUs", ("node", "numa"))
        gpu = _GpuFamilies()
        for n in nodes:
            name = n.name
            for s in NodeStatus:
                status.add_metric([name, s.value], 1.0 if n.status is s else 0.0)
            cores.add_metric([name], n.inventory.cores)
            memory.add_metric([name], n.inventory.memory)
            held_cores.add_metric([name], n.held.cores)
            held_memory.add_metric([name], n.held.memory)
            gpus.add_metric([name], len(n.inventory.gpus))
            held_gpus.add_metric([name], len(n.held.gpu_ids))
            running.add_metric([name], n.running_tasks)
            if n.last_heartbeat is not None:
                heartbeat.add_metric([name], n.last_heartbeat.timestamp())
            pinned = set(n.held.pinned_cpus)
            for z in n.inventory.numa:
                zone = str(z.id)
                numa_cpus.add_metric([name, zone], len(z.cpus))
                numa_memory.add_metric([name, zone], z.memory)
                numa_pinned.add_metric([name, zone], len(pinned.intersection(z.cpus)))
            u = n.usage
            if u is not None:
                cpu.add_metric([name], u.cpu_percent)
                used.add_metric([name], u.memory_used)
                for period, value in zip(_LOAD_PERIODS, u.load, strict=False):
                    load.add_metric([name, period], value)
                for sensor, celsius in sorted(u.temperatures.items()):
                    temperature.add_metric([name, sensor], celsius)
                for zu in u.numa:
                    if zu.cpu_percent is not None:
                        numa_cpu.add_metric([name, str(zu.id)], zu.cpu_percent)
            # the latest measurement where there is one, else what registration reported
            measured = u.gpus if u is not None and u.gpus else n.inventory.gpus
            held = set(n.held.gpu_ids)
            for g in measured:
                gpu.add(name, g, g.index in held)
        yield from (status, cores, memory, held_cores, held_memory, gpus, held_gpus, running)
        yield from (heartbeat, cpu, used, load, temperature)
        yield from (numa_cpus, numa_memory, numa_pinned, numa_cpu)
        yield from gpu.families()

    # -- tasks ----------------------------------------------------------------------
    def _tasks(self) -> Iterator[Metric]:
        with self.host.ledger.sessions() as s:
            rows = s.execute(select(Task.state, func.count()).group_by(Task.state)).all()
        counts = {str(state): int(count) for state, count in rows}
        by_state = GaugeMetricFamily("kawa_tasks", "Tasks by state", labels=["state"])
        for state in TaskState:
            by_state.add_metric([state.value], counts.get(state.value, 0))
        yield by_state
        yield GaugeMetricFamily(
            "kawa_queue_length",
            "Tasks waiting for resources (pending)",
            value=counts.get(TaskState.PENDING.value, 0),
        )
        yield CounterMetricFamily(
            "kawa_tasks_submitted",
            "Tasks submitted since the cluster's database was created",
            value=sum(counts.values()),
        )
        yield GaugeMetricFamily(
            "kawa_scheduling_last_pass_seconds",
            "Duration of the last scheduling pass that had queued tasks",
            value=self.host.scheduler.last_pass_seconds,
        )
        yield GaugeMetricFamily(
            "kawa_host_leading",
            "1 while this host leads the cluster (always with SQLite), 0 while it stands by",
            value=1.0 if self.host.leading else 0.0,
        )


class _GpuFamilies:
    """The per-GPU families, labelled by node and GPU index."""

    def __init__(self) -> None:
        labels = ["node", "gpu"]
        self.info = GaugeMetricFamily(
            "kawa_gpu_info", "A GPU's name and UUID (value 1)", labels=[*labels, "name", "uuid"]
        )
        self.held = GaugeMetricFamily("kawa_gpu_held", "1 when a task holds the GPU", labels=labels)
        self.values: dict[str, tuple[GaugeMetricFamily, Callable[[GpuInfo], float | None]]] = {
            "utilization": (
                GaugeMetricFamily("kawa_gpu_utilization_percent", "GPU utilisation", labels=labels),
                lambda g: g.utilization,
            ),
            "memory_used": (
                GaugeMetricFamily("kawa_gpu_memory_used_bytes", "GPU memory in use", labels=labels),
                lambda g: g.memory_used,
            ),
            "memory_total": (
                GaugeMetricFamily("kawa_gpu_memory_total_bytes", "GPU memory", labels=labels),
                lambda g: g.memory_total,
            ),
            "temperature": (
                GaugeMetricFamily("kawa_gpu_temperature_celsius", "GPU temperature", labels=labels),
                lambda g: g.temperature,
            ),
            "power": (
                GaugeMetricFamily("kawa_gpu_power_watts", "GPU power draw", labels=labels),
                lambda g: g.power_watts,
            ),
        }

    def add(self, node: str, g: GpuInfo, held: bool) -> None:
        labels = [node, str(g.index)]
        self.info.add_metric([*labels, g.name, g.uuid], 1.0)
        self.held.add_metric(labels, 1.0 if held else 0.0)
        for family, read in self.values.values():
            value = read(g)
            if value is not None:  # a metric this GPU or driver does not report
                family.add_metric(labels, value)

    def families(self) -> Iterator[Metric]:
        yield self.info
        yield self.held
        for family, _ in self.values.values():
            yield family


def metrics_router(host: Host) -> APIRouter:
    """``GET /metrics`` for ``host``, with a registry of its own (one per app)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ClusterCollector(host))
    passes = Histogram(
        "kawa_scheduling_pass_seconds",
        "Duration of scheduling passes (placing queued tasks and committing placements)",
        buckets=PASS_BUCKETS,
        registry=registry,
    )
    host.scheduler.pass_observers.append(passes.observe)
    guard = [] if host.config.metrics_public else [Depends(deps.user)]
    router = APIRouter(tags=["meta"], dependencies=guard)

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
