"""Whether a request fits one node, ever or right now, and what it gets there; and
whether an allocation fits (:func:`fits`, the one check the scheduler and the host's
applier both make before they count an allocation as held).

The request checks return ``None`` when the request fits, or a sentence naming the
problem.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from kawa.core.resources import Allocation, NodeCapacity, NodeUsage, ResourceRequest
from kawa.core.targets import TargetSpec
from kawa.core.units import format_memory

Shortage = Literal["cores", "memory", "gpus", "numa"]


@dataclass(frozen=True)
class Problem:
    """Why a request does not fit a node now: which resource is short, in words."""

    shortage: Shortage
    message: str


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _ids(values: frozenset[int] | set[int]) -> str:
    return ", ".join(str(v) for v in sorted(values))


def request_problem(request: ResourceRequest) -> str | None:
    """What is malformed in the request itself, if anything."""
    if request.cores < 1:
        return f"cores must be at least 1 (got {request.cores})"
    if request.gpus < 0:
        return f"gpus must be 0 or more (got {request.gpus})"
    if request.memory is not None and request.memory < 1:
        return f"memory must be at least 1 byte (got {request.memory})"
    return None


def gpu_count(request: ResourceRequest, target: TargetSpec | None) -> int:
    """How many GPUs the task takes: the named ones, else the requested count."""
    return len(target.gpus) if target is not None and target.gpus else request.gpus


def target_problem(
    request: ResourceRequest, target: TargetSpec, name: str, cap: NodeCapacity
) -> str | None:
    """Why ``target`` on node ``name`` could never hold ``request``, if it could not."""
    zone = None
    if target.numa is not None:
        zone = cap.zone(target.numa)
        if zone is None:
            zones = _ids({z.id for z in cap.numa}) if cap.numa else "none reported"
            return f"unknown NUMA id {target.numa} on node {name!r}; its NUMA zones: {zones}"
    for gpu in target.gpus:
        if gpu not in cap.gpus:
            known = _ids(cap.gpus) if cap.gpus else "none"
            return f"unknown GPU id {gpu} on node {name!r}; its GPUs: {known}"
    if target.gpus and request.gpus > 0 and request.gpus != len(target.gpus):
        return (
            f"target {str(target)!r} names {plural(len(target.gpus), 'GPU')} "
            f"but the request asks for {request.gpus}"
        )
    memory = request.memory or 0
    gpus = gpu_count(request, target)
    if request.cores > cap.cores:
        return f"needs {plural(request.cores, 'core')} but node {name!r} has {cap.cores}"
    if memory > cap.memory:
        return (
            f"needs {format_memory(memory)} memory but node {name!r} has "
            f"{format_memory(cap.memory)}"
        )
    if gpus > len(cap.gpus):
        return f"needs {plural(gpus, 'GPU')} but node {name!r} has {len(cap.gpus)}"
    if zone is not None:
        if request.cores > len(zone.cpus):
            return (
                f"needs {plural(request.cores, 'core')} but NUMA zone {zone.id} of node "
                f"{name!r} has {plural(len(zone.cpus), 'CPU')}"
            )
        if memory > zone.memory:
            return (
                f"needs {format_memory(memory)} memory but NUMA zone {zone.id} of node "
                f"{name!r} has {format_memory(zone.memory)}"
            )
    return None


def could_ever_hold(request: ResourceRequest, cap: NodeCapacity) -> bool:
    """Whether an empty node of capacity ``cap`` holds ``request`` (no target)."""
    return (
        request.cores <= cap.cores
        and (request.memory or 0) <= cap.memory
        and request.gpus <= len(cap.gpus)
    )


def cluster_problem(request: ResourceRequest, caps: Sequence[NodeCapacity]) -> str | None:
    """Why no node of the cluster could ever hold an untargeted ``request``, if none could."""
    if not caps:
        return "no nodes registered"
    memory = request.memory or 0
    problems: list[str] = []
    most_cores = max(c.cores for c in caps)
    if request.cores > most_cores:
        problems.append(f"no node has {plural(request.cores, 'core')} (largest: {most_cores})")
    most_memory = max(c.memory for c in caps)
    if memory > most_memory:
        problems.append(
            f"no node has {format_memory(memory)} memory (largest: {format_memory(most_memory)})"
        )
    most_gpus = max(len(c.gpus) for c in caps)
    if request.gpus > most_gpus:
        problems.append(f"no node has {plural(request.gpus, 'GPU')} (most: {most_gpus})")
    if problems:
        return "; ".join(problems)
    if not any(could_ever_hold(request, c) for c in caps):
        return (
            f"no node has {plural(request.cores, 'core')}, {format_memory(memory)} memory "
            f"and {plural(request.gpus, 'GPU')} together"
        )
    return None


def _free_gpus(cap: NodeCapacity, usage: NodeUsage) -> list[int]:
    return sorted(cap.gpus - usage.gpu_ids)


def _free_zone_cpus(cap: NodeCapacity, usage: NodeUsage, numa: int) -> list[int]:
    zone = cap.zone(numa)
    return [] if zone is None else sorted(zone.cpus - usage.pinned_cpus)


def free_problem(
    request: ResourceRequest,
    target: TargetSpec | None,
    name: str,
    cap: NodeCapacity,
    usage: NodeUsage,
) -> Problem | None:
    """Why ``request`` does not fit node ``name`` with ``usage`` held, if it does not."""
    free_cores = cap.cores - usage.cores
    if request.cores > free_cores:
        return Problem(
            "cores", f"needs {plural(request.cores, 'core')}, {max(free_cores, 0)} free on {name}"
        )
    memory, free_memory = request.memory or 0, max(cap.memory - usage.memory, 0)
    if memory > free_memory:
        return Problem(
            "memory",
            f"needs {format_memory(memory)} memory, {format_memory(free_memory)} free on {name}",
        )
    if target is not None and target.gpus:
        for gpu in target.gpus:
            if gpu not in cap.gpus:
                return Problem("gpus", f"GPU {gpu} does not exist on {name}")
            if gpu in usage.gpu_ids:
                return Problem("gpus", f"GPU {gpu} on {name} is in use")
    elif request.gpus > 0:
        free = len(_free_gpus(cap, usage))
        if request.gpus > free:
            return Problem("gpus", f"needs {plural(request.gpus, 'GPU')}, {free} free on {name}")
    if target is not None and target.numa is not None:
        unpinned = len(_free_zone_cpus(cap, usage, target.numa))
        if request.cores > unpinned:
            return Problem(
                "numa",
                f"needs {plural(request.cores, 'CPU')} of NUMA zone {target.numa}, "
                f"{unpinned} unpinned on {name}",
            )
    return None


def allocate(
    request: ResourceRequest,
    target: TargetSpec | None,
    name: str,
    cap: NodeCapacity,
    usage: NodeUsage,
) -> Allocation:
    """What a task gets on node ``name``; call only when :func:`free_problem` is None."""
    if target is not None and target.gpus:
        gpu_ids = tuple(sorted(target.gpus))
    else:
        gpu_ids = tuple(_free_gpus(cap, usage)[: request.gpus])
    numa: int | None = None
    cpuset: tuple[int, ...] = ()
    if target is not None and target.numa is not None:
        numa = target.numa
        cpuset = tuple(_free_zone_cpus(cap, usage, numa)[: request.cores])
    return Allocation(
        node=name,
        cores=request.cores,
        memory=request.memory or 0,
        gpu_ids=gpu_ids,
        numa=numa,
        cpuset=cpuset,
    )


def fits(a: Allocation, cap: NodeCapacity, usage: NodeUsage) -> bool:
    """Whether allocation ``a`` fits a node of capacity ``cap`` with ``usage`` held:
    enough free cores and memory; its GPUs exist, are distinct and free; its pinned CPUs
    are distinct, free and (with a NUMA zone) of that zone, which exists."""
    gpus, cpus = set(a.gpu_ids), set(a.cpuset)
    if a.numa is not None:
        zone = cap.zone(a.numa)
        if zone is None or not cpus <= zone.cpus:
            return False
    return (
        usage.cores + a.cores <= cap.cores
        and usage.memory + a.memory <= cap.memory
        and len(gpus) == len(a.gpu_ids)
        and gpus <= cap.gpus
        and not gpus & usage.gpu_ids
        and len(cpus) == len(a.cpuset)
        and not cpus & usage.pinned_cpus
    )
