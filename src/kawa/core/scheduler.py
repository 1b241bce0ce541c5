"""The scheduler: a pure function from a cluster snapshot and a queue to placements.

Rules:
- Explicit targets are validated at submit (:func:`validate`); impossible requests are
  errors, requests that fit the cluster but not right now wait in the queue.
- Queue order is priority (higher first), then FIFO (lower task id first).
- Backfill: a task that cannot be placed now does not block smaller tasks behind it,
  unless it has waited longer than ``starvation_after`` seconds; then a node is
  reserved for it (no lower-ordered task is placed there): its target node, else the
  schedulable node with the most free cores of those that could ever hold it.
- Strategy ``binpack`` fills the busiest node that fits; ``spread`` the emptiest.
- A NUMA-targeted task gets a cpuset of ``cores`` CPUs of that zone not pinned by others.
- GPUs are exclusive: named ids must be free; ``gpus=N`` takes the N lowest free ids.
- A batch with a cap (``--max-parallel N``) never has more than N tasks holding
  resources at once; the rest of it waits, and does not block other tasks.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction

from kawa.core.fit import (
    Problem,
    allocate,
    cluster_problem,
    could_ever_hold,
    fits,
    free_problem,
    plural,
    request_problem,
    target_problem,
)
from kawa.core.resources import Allocation, NodeCapacity, NodeUsage, ResourceRequest
from kawa.core.targets import TargetSpec
from kawa.core.units import format_memory


class Strategy(StrEnum):
    BINPACK = "binpack"
    SPREAD = "spread"


@dataclass(frozen=True)
class NodeSnapshot:
    name: str
    capacity: NodeCapacity
    usage: NodeUsage
    schedulable: bool = True
    """False when the node is offline or draining: nothing new is placed there."""


@dataclass(frozen=True)
class QueuedTask:
    id: int
    request: ResourceRequest
    target: TargetSpec | None = None
    priority: int = 0
    enqueued_at: float = 0.0
    batch: int | None = None


@dataclass(frozen=True)
class BatchCap:
    """How many tasks of a batch may hold resources at once, and how many do now."""

    limit: int
    active: int = 0


@dataclass(frozen=True)
class Placement:
    task_id: int
    allocation: Allocation


@dataclass(frozen=True)
class Reservation:
    """A node kept for a task that has waited too long: no task ordered after it is
    placed there."""

    task_id: int
    node: str
    missing: str
    """Why the task does not fit now (e.g. "needs 4 cores, 2 free on n")."""

    @property
    def reason(self) -> str:
        """Why the task waits, in words."""
        return f"{self.missing}; {self.node} is reserved for it (waited too long)"


@dataclass(frozen=True)
class SchedulingResult:
    placements: tuple[Placement, ...]
    waiting: dict[int, str]
    """Task id -> why it still waits (e.g. "needs 2 cores, 1 free on node1"); for a task
    that holds a reservation, its :attr:`Reservation.reason`."""
    reservations: tuple[Reservation, ...] = ()
    """The nodes kept for starving tasks in this pass."""


class PlacementError(ValueError):
    """The request can never be satisfied by this cluster (message names the problem)."""


def validate(
    request: ResourceRequest, target: TargetSpec | None, nodes: Sequence[NodeSnapshot]
) -> None:
    """Raise :class:`PlacementError` unless some node could ever hold the request.

    Offline and draining nodes count: a task that fits only them waits for them.
    """
    admit(request, target, {n.name: n.capacity for n in nodes})


def admit(
    request: ResourceRequest, target: TargetSpec | None, capacities: Mapping[str, NodeCapacity]
) -> None:
    """:func:`validate` on node capacities alone (name -> capacity): whether a request
    could ever be held depends on what nodes have, never on what they hold now."""
    problem = request_problem(request)
    if problem is None and not capacities:
        problem = "no nodes registered"
    if problem is None and target is None:
        problem = cluster_problem(request, list(capacities.values()))
    elif problem is None and target is not None:
        capacity = capacities.get(target.node)
        if capacity is None:
            known = ", ".join(sorted(capacities))
            problem = f"unknown node {target.node!r}; known nodes: {known}"
        else:
            problem = target_problem(request, target, target.node, capacity)
    if problem is not None:
        raise PlacementError(problem)


def place(
    nodes: Sequence[NodeSnapshot],
    queue: Sequence[QueuedTask],
    strategy: Strategy = Strategy.BINPACK,
    now: float = 0.0,
    starvation_after: float = 300.0,
    caps: Mapping[int, BatchCap] | None = None,
) -> SchedulingResult:
    """Place as much of ``queue`` as fits now; never over-commits a node or a GPU, nor
    starts more of a batch than its cap in ``caps`` (batch id -> cap) allows.

    The snapshots are not modified: the pass works on copies of their usage.
    """
    return _Pass(nodes, strategy, now, starvation_after, caps or {}).run(queue)


def working_usage(nodes: Sequence[NodeSnapshot]) -> dict[str, NodeUsage]:
    """Node name -> a copy of its usage, to count new allocations in (the snapshots
    are not modified)."""
    return {
        n.name: NodeUsage(
            n.usage.cores, n.usage.memory, set(n.usage.gpu_ids), set(n.usage.pinned_cpus)
        )
        for n in nodes
    }


def take(node: NodeSnapshot, usage: NodeUsage, allocation: Allocation) -> bool:
    """Count ``allocation`` in ``usage`` (the node's working usage) if the node is
    schedulable and the allocation :func:`fits` it; else change nothing, return False."""
    if not (node.schedulable and fits(allocation, node.capacity, usage)):
        return False
    usage.add(allocation)
    return True


class _Pass:
    """One scheduling pass: the working usage, reservations and results so far."""

    def __init__(
        self,
        nodes: Sequence[NodeSnapshot],
        strategy: Strategy,
        now: float,
        starvation_after: float,
        caps: Mapping[int, BatchCap],
    ) -> None:
        self.nodes = {n.name: n for n in nodes}
        self.schedulable = [n for n in self.nodes.values() if n.schedulable]
        self.capacities = [n.capacity for n in self.nodes.values()]
        self.never: dict[ResourceRequest, str | None] = {}
        """Request -> why no node could ever hold it (None: some node could)."""
        self.taken = dict.fromkeys(self.nodes, 0)
        """Node name -> how many allocations this pass has counted on it."""
        self.ranked: dict[ResourceRequest, list[tuple[tuple[object, ...], str, int]]] = {}
        """Request -> a heap of the nodes it fits, by the strategy's preference (each
        entry with the node's :attr:`taken` count when it was ranked)."""
        self.caps = caps
        self.active = {batch: cap.active for batch, cap in caps.items()}
        """Batch id -> its tasks holding resources, counting this pass's placements."""
        self.usage = working_usage(nodes)
        self.strategy = strategy
        self.now = now
        self.starvation_after = starvation_after
        self.reserved: dict[str, int] = {}
        """Node name -> id of the starving task it is kept for."""
        self.placements: list[Placement] = []
        self.waiting: dict[int, str] = {}
        self.reservations: list[Reservation] = []
        self.refused: dict[tuple[ResourceRequest, TargetSpec | None], tuple[str, bool]] = {}
        """Why a request (and target) did not fit, while nothing has been taken or
        reserved since: a queue of like tasks that wait is tried once, not once each."""

    def run(self, queue: Sequence[QueuedTask]) -> SchedulingResult:
        for task in sorted(queue, key=lambda t: (-t.priority, t.id)):
            batch = task.batch if task.batch in self.caps else None
            if batch is not None and self.active[batch] >= self.caps[batch].limit:
                self.waiting[task.id] = f"its batch runs at most {self.caps[batch].limit} at once"
                continue
            key = (task.request, task.target)
            outcome = self.refused.get(key) or self._try(task)
            if isinstance(outcome, Allocation):
                if not take(self.nodes[outcome.node], self.usage[outcome.node], outcome):
                    raise AssertionError(f"allocation {outcome} does not fit")
                self.taken[outcome.node] += 1
                self.placements.append(Placement(task.id, outcome))
                self.refused.clear()
                if batch is not None:
                    self.active[batch] += 1
                continue
            self.refused[key] = outcome
            reason, hopeless = outcome
            if not hopeless and self.now - task.enqueued_at > self.starvation_after:
                node = self._reservation(task)
                if node is not None:
                    holder = self.reserved.setdefault(node, task.id)
                    if holder == task.id:
                        reservation = Reservation(task.id, node, reason)
                        self.reservations.append(reservation)
                        self.refused.clear()
                        reason = reservation.reason
            self.waiting[task.id] = reason
        return SchedulingResult(tuple(self.placements), self.waiting, tuple(self.reservations))

    def _try(self, task: QueuedTask) -> Allocation | tuple[str, bool]:
        """The allocation for ``task``, or why it waits and whether it never could fit."""
        request, target = task.request, task.target
        problem = request_problem(request)
        if problem is not None:
            return f"invalid request: {problem}", True
        if target is not None:
            return self._try_target(request, target)
        if request not in self.never:
            self.never[request] = cluster_problem(request, self.capacities)
        problem = self.never[request]
        if problem is not None:
            return problem, True
        candidates = self.schedulable
        if not candidates:
            return "no node is schedulable (all are offline or draining)", False
        best = self._best(request)
        if best is not None:
            return allocate(request, None, best.name, best.capacity, self.usage[best.name])
        problems: list[Problem] = []
        held: list[str] = []
        for node in candidates:
            found = free_problem(request, None, node.name, node.capacity, self.usage[node.name])
            if found is not None:
                problems.append(found)
            else:
                held.append(node.name)  # it fits, but is reserved
        return self._summary(request, problems, held), False

    def _best(self, request: ResourceRequest) -> NodeSnapshot | None:
        """The schedulable, unreserved node that an untargeted ``request`` fits now and
        the strategy prefers, if any. Within a pass nodes only gain allocations and
        reservations, so a node that does not fit never fits again, and only the nodes
        taken from since a request was ranked need ranking again."""
        heap = self.ranked.get(request)
        if heap is None:
            fitting = [n for n in self.schedulable if self._fits_now(request, n)]
            heap = self.ranked[request] = [self._rank(n, request) for n in fitting]
            heapq.heapify(heap)
        while heap:
            _, name, taken = heap[0]
            node = self.nodes[name]
            if taken != self.taken[name]:  # ranked before it was taken from: again
                heapq.heappop(heap)
                if self._fits_now(request, node):
                    heapq.heappush(heap, self._rank(node, request))
            elif name in self.reserved:
                heapq.heappop(heap)
            else:
                return node
        return None

    def _rank(
        self, node: NodeSnapshot, request: ResourceRequest
    ) -> tuple[tuple[object, ...], str, int]:
        return self._preference(node, request), node.name, self.taken[node.name]

    def _fits_now(self, request: ResourceRequest, node: NodeSnapshot) -> bool:
        """Whether an untargeted ``request`` fits ``node`` now and the node is not
        reserved (too few free cores settle it without building the reason)."""
        usage = self.usage[node.name]
        if request.cores > node.capacity.cores - usage.cores or node.name in self.reserved:
            return False
        return free_problem(request, None, node.name, node.capacity, usage) is None

    def _try_target(
        self, request: ResourceRequest, target: TargetSpec
    ) -> Allocation | tuple[str, bool]:
        node = self.nodes.get(target.node)
        if node is None:
            return f"unknown node {target.node!r}", True
        problem = target_problem(request, target, node.name, node.capacity)
        if problem is not None:
            return problem, True
        if not node.schedulable:
            return f"{node.name} is offline or draining", False
        usage = self.usage[node.name]
        found = free_problem(request, target, node.name, node.capacity, usage)
        if found is not None:
            return found.message, False
        holder = self.reserved.get(node.name)
        if holder is not None:
            return f"{node.name} is reserved for task {holder}, which has waited too long", False
        return allocate(request, target, node.name, node.capacity, usage)

    def _preference(self, node: NodeSnapshot, request: ResourceRequest) -> tuple[object, ...]:
        """Sort key: the chosen node is the smallest."""
        usage, cap = self.usage[node.name], node.capacity
        free_cores = cap.cores - usage.cores - request.cores
        if self.strategy is Strategy.SPREAD:
            return (-Fraction(free_cores, max(cap.cores, 1)), node.name)
        free_memory = cap.memory - usage.memory - (request.memory or 0)
        return (free_cores, free_memory, node.name)

    def _summary(self, request: ResourceRequest, problems: list[Problem], held: list[str]) -> str:
        reserved = f" ({', '.join(held)} reserved for starving tasks)" if held else ""
        if not problems:
            return f"fits only on nodes reserved for starving tasks: {', '.join(held)}"
        if len(problems) == 1:
            return problems[0].message + reserved
        wants = {
            "cores": plural(request.cores, "free core"),
            "memory": f"{format_memory(request.memory or 0)} free memory",
            "gpus": plural(request.gpus, "free GPU"),
        }
        short = {p.shortage for p in problems}
        if len(short) == 1:
            (only,) = short
            return f"no node has {wants[only]} now{reserved}"
        parts = [wants["cores"]]
        if request.memory:
            parts.append(wants["memory"])
        if request.gpus:
            parts.append(wants["gpus"])
        return f"no node has {', '.join(parts[:-1])} and {parts[-1]} at once now{reserved}"

    def _reservation(self, task: QueuedTask) -> str | None:
        """The node a starving task keeps for itself: its target, else of the schedulable
        nodes that could ever hold it the one with the most free cores (by name on a tie)."""
        if task.target is not None:
            return task.target.node if task.target.node in self.nodes else None
        able = [
            n
            for n in self.nodes.values()
            if n.schedulable and could_ever_hold(task.request, n.capacity)
        ]
        if not able:
            return None
        best = min(able, key=lambda n: (self.usage[n.name].cores - n.capacity.cores, n.name))
        return best.name
