"""Resource vocabulary shared by the scheduler and the services: capacity, usage, requests."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class NumaZone:
    """One NUMA node of a machine: its CPU ids and its memory in bytes."""

    id: int
    cpus: frozenset[int]
    memory: int


@dataclass(frozen=True)
class NodeCapacity:
    """What a node can ever hold."""

    cores: int
    memory: int
    numa: tuple[NumaZone, ...] = ()
    gpus: frozenset[int] = frozenset()

    def zone(self, numa_id: int) -> NumaZone | None:
        return next((z for z in self.numa if z.id == numa_id), None)


@dataclass(frozen=True)
class ResourceRequest:
    """What one task asks for. ``memory`` None means no limit (accounted as 0)."""

    cores: int = 1
    memory: int | None = None
    gpus: int = 0


@dataclass(frozen=True)
class Allocation:
    """Resources held by one task on one node, from ``assigning`` until it ends."""

    node: str
    cores: int
    memory: int
    gpu_ids: tuple[int, ...] = ()
    numa: int | None = None
    cpuset: tuple[int, ...] = ()


@dataclass
class NodeUsage:
    """What is held on a node right now (sum of its allocations)."""

    cores: int = 0
    memory: int = 0
    gpu_ids: set[int] = field(default_factory=set)
    pinned_cpus: set[int] = field(default_factory=set)

    @classmethod
    def of(cls, allocations: list[Allocation]) -> NodeUsage:
        usage = cls()
        for a in allocations:
            usage.add(a)
        return usage

    def add(self, a: Allocation) -> None:
        self.cores += a.cores
        self.memory += a.memory
        self.gpu_ids.update(a.gpu_ids)
        self.pinned_cpus.update(a.cpuset)
