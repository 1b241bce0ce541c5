"""Node inventory, health and registration models."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from kawa.protocol.common import WireModel


class NodeStatus(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    DRAINING = "draining"


class NumaZoneInfo(WireModel):
    id: int = Field(ge=0)
    cpus: list[int]
    memory: int = Field(ge=0, description="bytes")


class GpuInfo(WireModel):
    index: int = Field(ge=0)
    uuid: str = ""
    name: str = ""
    memory_total: int = Field(default=0, ge=0, description="bytes")
    memory_used: int = Field(default=0, ge=0, description="bytes")
    utilization: float | None = None
    temperature: float | None = None
    power_watts: float | None = None


class NodeInventory(WireModel):
    """What a node has: reported at registration, refreshed by heartbeats."""

    cores: int = Field(ge=1)
    memory: int = Field(ge=1, description="bytes")
    numa: list[NumaZoneInfo] = []
    gpus: list[GpuInfo] = []


class NumaUsage(WireModel):
    """How busy one NUMA zone's CPUs were over a heartbeat interval."""

    id: int = Field(ge=0)
    cpu_percent: float | None = None
    """Mean of the zone's per-CPU percentages; None when none of its CPUs can be measured."""


class NodeUsageSample(WireModel):
    """One heartbeat's measurements."""

    at: datetime
    cpu_percent: float
    memory_used: int
    memory_percent: float
    load: list[float] = []
    gpus: list[GpuInfo] = []
    numa: list[NumaUsage] = []
    temperatures: dict[str, float] = {}
    """Sensor readings in °C by ``chip/label`` (empty where the OS exposes none)."""


class RunnerTaskObservation(WireModel):
    """What the runner sees of one of its tasks (heartbeats carry the full list)."""

    task_id: str
    state: str
    """``running`` | ``paused`` | ``exited`` (the exit itself is reported separately)."""


class NodeRegistration(WireModel):
    name: str = Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    url: str = Field(min_length=1, description="base URL where the host reaches the runner")
    inventory: NodeInventory
    version: str = ""


class RegistrationAccepted(WireModel):
    cluster_id: str
    heartbeat_interval: float


class Heartbeat(WireModel):
    name: str
    usage: NodeUsageSample
    tasks: list[RunnerTaskObservation] = []
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
