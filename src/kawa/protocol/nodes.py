"""Node inventory, health and registration models."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from kawa.protocol import bounds as b
from kawa.protocol.common import WireModel


class NodeStatus(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    DRAINING = "draining"


class NumaZoneInfo(WireModel):
    id: b.SmallIndex
    cpus: list[b.SmallIndex] = Field(max_length=b.MAX_LIST)
    memory: b.Count = Field(description="bytes")


class GpuInfo(WireModel):
    index: b.SmallIndex
    uuid: b.Short = ""
    name: b.Short = ""
    memory_total: b.Count = Field(default=0, description="bytes")
    memory_used: b.Count = Field(default=0, description="bytes")
    utilization: b.Percent | None = None
    temperature: b.Measure | None = None
    power_watts: b.Measure | None = None


class NodeInventory(WireModel):
    """What a node has: reported at registration, refreshed by heartbeats."""

    cores: int = Field(ge=1, le=2**31 - 1)
    memory: int = Field(ge=1, le=b.MAX_MEMORY, description="bytes")
    numa: list[NumaZoneInfo] = Field(default=[], max_length=b.MAX_LIST)
    gpus: list[GpuInfo] = Field(default=[], max_length=b.MAX_LIST)


class NumaUsage(WireModel):
    """How busy one NUMA zone's CPUs were over a heartbeat interval."""

    id: b.SmallIndex
    cpu_percent: b.Percent | None = None
    """Mean of the zone's per-CPU percentages; None when none of its CPUs can be measured."""


class NodeUsageSample(WireModel):
    """One heartbeat's measurements."""

    at: datetime
    cpu_percent: b.Percent
    memory_used: b.Count
    memory_percent: b.Percent
    memory_total: b.Count | None = Field(default=None, description="bytes")
    """The machine's memory (None from runners that do not report it)."""
    load: list[b.Measure] = Field(default=[], max_length=16)
    gpus: list[GpuInfo] = Field(default=[], max_length=b.MAX_LIST)
    numa: list[NumaUsage] = Field(default=[], max_length=b.MAX_LIST)
    temperatures: dict[b.Short, b.Measure] = Field(default={}, max_length=b.MAX_LIST)
    """Sensor readings in °C by ``chip/label`` (empty where the OS exposes none)."""


class RunnerTaskObservation(WireModel):
    """What the runner sees of one of its tasks (heartbeats carry the full list)."""

    task_id: b.RunnerTaskId
    state: b.Short
    """``running`` | ``paused`` | ``exited`` (the exit itself is reported separately)."""


class NodeRegistration(WireModel):
    name: str = Field(
        min_length=1, max_length=b.MAX_NODE_NAME, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
    )
    url: b.Url = Field(description="base URL where the host reaches the runner")
    inventory: NodeInventory
    version: b.Short = ""
    protocol_version: int | None = Field(default=None, ge=0, le=1_000_000)
    """The host↔runner protocol the runner speaks (None: a runner from before it was sent)."""


class RegistrationAccepted(WireModel):
    cluster_id: str
    heartbeat_interval: float


class Heartbeat(WireModel):
    name: b.NodeName
    usage: NodeUsageSample
    tasks: list[RunnerTaskObservation] = Field(default=[], max_length=b.MAX_LIST)
    inventory: NodeInventory | None = None


class HeldResources(WireModel):
    cores: int = 0
    memory: int = 0
    gpu_ids: list[int] = []
    pinned_cpus: list[int] = []


class NodeView(WireModel):
    name: str
    url: str
    status: NodeStatus
    inventory: NodeInventory
    held: HeldResources
    usage: NodeUsageSample | None = None
    registered_at: datetime
    last_heartbeat: datetime | None = None
    running_tasks: int = 0


class NodeHealth(WireModel):
    node: NodeView
    history: list[NodeUsageSample] = []
