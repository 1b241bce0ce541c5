"""The scheduler: validation messages, placement rules and cluster-wide invariants."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kawa.core.fit import allocate, fits, free_problem, gpu_count
from kawa.core.resources import Allocation, NodeCapacity, NodeUsage, NumaZone, ResourceRequest
from kawa.core.scheduler import (
    BatchCap,
    NodeSnapshot,
    Placement,
    PlacementError,
    QueuedTask,
    Reservation,
    SchedulingResult,
    Strategy,
    place,
    take,
    validate,
    working_usage,
)
from kawa.core.targets import TargetSpec

PROPERTY = settings(max_examples=200, deadline=None, database=None)
G = 10**9


def zones(*sizes: int, memory: int = 8 * G) -> tuple[NumaZone, ...]:
    """NUMA zones with consecutive CPU ids: ``zones(4, 4)`` is CPUs 0-3 and 4-7."""
    out: list[NumaZone] = []
    first = 0
    for index, size in enumerate(sizes):
        out.append(NumaZone(index, frozenset(range(first, first + size)), memory))
        first += size
    return tuple(out)


def node(
    name: str,
    cores: int = 8,
    memory: int = 16 * G,
    *,
    numa: tuple[NumaZone, ...] = (),
    gpus: int = 0,
    used: NodeUsage | None = None,
    schedulable: bool = True,
) -> NodeSnapshot:
    capacity = NodeCapacity(cores, memory, numa, frozenset(range(gpus)))
    return NodeSnapshot(name, capacity, used or NodeUsage(), schedulable)


def task(
    task_id: int,
    cores: int = 1,
    memory: int | None = None,
    gpus: int = 0,
    target: str | None = None,
    priority: int = 0,
    enqueued_at: float = 0.0,
) -> QueuedTask:
    spec = TargetSpec.parse(target) if target else None
    return QueuedTask(task_id, ResourceRequest(cores, memory, gpus), spec, priority, enqueued_at)


def placed(result: SchedulingResult) -> dict[int, Allocation]:
    return {p.task_id: p.allocation for p in result.placements}


# --------------------------------------------------------------------------- validate

CLUSTER = [
    node("a", 2, 4 * G, numa=zones(1, 1, memory=2 * G), gpus=2),
    node("b", 8, 32 * G, numa=zones(4, 4, memory=16 * G), schedulable=False),
]


@pytest.mark.parametrize(
    ("request_", "target", "nodes", "message"),
    [
        (ResourceRequest(1), "x", CLUSTER, "unknown node 'x'; known nodes: a, b"),
        (ResourceRequest(1), "a:5", CLUSTER, "unknown NUMA id 5 on node 'a'; its NUMA zones: 0, 1"),
        (ResourceRequest(1), "a::7", CLUSTER, "unknown GPU id 7 on node 'a'; its GPUs: 0, 1"),
        (ResourceRequest(1), "b::0", CLUSTER, "unknown GPU id 0 on node 'b'; its GPUs: none"),
        (ResourceRequest(1, gpus=1), "a::0,1", CLUSTER, "names 2 GPUs but the request asks for 1"),
        (ResourceRequest(3), "a", CLUSTER, "needs 3 cores but node 'a' has 2"),
        (ResourceRequest(1, 5 * G), "a", CLUSTER, "needs 5G memory but node 'a' has 4G"),
        (ResourceRequest(1, gpus=3), "a", CLUSTER, "needs 3 GPUs but node 'a' has 2"),
        (ResourceRequest(1, gpus=1), "b", CLUSTER, "needs 1 GPU but node 'b' has 0"),
        (ResourceRequest(2), "a:0", CLUSTER, "needs 2 cores but NUMA zone 0 of node 'a' has 1 CPU"),
        (
            ResourceRequest(1, 3 * G),
            "a:1",
            CLUSTER,
            "needs 3G memory but NUMA zone 1 of node 'a' has 2G",
        ),
        (ResourceRequest(1), None, [], "no nodes registered"),
        (ResourceRequest(1), "a", [], "no nodes registered"),
        (ResourceRequest(64), None, [node("n", 2)], "no node has 64 cores (largest: 2)"),
        (ResourceRequest(64), None, CLUSTER, "no node has 64 cores (largest: 8)"),
        (ResourceRequest(1, 64 * G), None, CLUSTER, "no node has 64G memory (largest: 32G)"),
        (ResourceRequest(1, gpus=4), None, CLUSTER, "no node has 4 GPUs (most: 2)"),
        (
            ResourceRequest(8, gpus=1),
            None,
            CLUSTER,
            "no node has 8 cores, 0B memory and 1 GPU together",
        ),
        (ResourceRequest(0), None, CLUSTER, "cores must be at least 1 (got 0)"),
        (ResourceRequest(1, gpus=-1), None, CLUSTER, "gpus must be 0 or more (got -1)"),
        (ResourceRequest(1, memory=0), None, CLUSTER, "memory must be at least 1 byte"),
    ],
)
def test_validate_rejects(
    request_: ResourceRequest, target: str | None, nodes: list[NodeSnapshot], message: str
) -> None:
    spec = TargetSpec.parse(target) if target else None
    with pytest.raises(PlacementError) as caught:
        validate(request_, spec, nodes)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("request_", "target"),
    [
        (ResourceRequest(8, 32 * G), None),  # only the offline node holds it: it waits
        (ResourceRequest(2, 4 * G, 2), None),
        (ResourceRequest(2, 4 * G, 2), "a"),
        (ResourceRequest(1, 2 * G), "a:1::1"),
        (ResourceRequest(1, gpus=2), "a::0,1"),
        (ResourceRequest(4, 16 * G), "b:1"),
        (ResourceRequest(8), "b"),
    ],
)
def test_validate_accepts(request_: ResourceRequest, target: str | None) -> None:
    validate(request_, TargetSpec.parse(target) if target else None, CLUSTER)


# --------------------------------------------------------------------------- place: choice


def test_binpack_and_spread_choose_different_nodes() -> None:
    nodes = [node("busy", 8, used=NodeUsage(cores=6)), node("idle", 8)]
    queue = [task(1)]
    assert placed(place(nodes, queue, Strategy.BINPACK))[1].node == "busy"
    assert placed(place(nodes, queue, Strategy.SPREAD))[1].node == "idle"


def test_binpack_ties_break_on_memory_then_name() -> None:
    nodes = [
        node("c", 4, 16 * G),
        node("b", 4, 8 * G),
        node("a", 4, 8 * G),
    ]
    assert placed(place(nodes, [task(1)]))[1].node == "a"
    nodes[2] = node("a", 4, 8 * G, used=NodeUsage(memory=0))
    nodes[0] = node("c", 4, 16 * G, used=NodeUsage(memory=12 * G))
    assert placed(place(nodes, [task(1)]))[1].node == "c"


def test_spread_compares_free_fractions() -> None:
    small = node("small", 4, used=NodeUsage(cores=2))  # 1/4 free after placing
    large = node("large", 16, used=NodeUsage(cores=10))  # 5/16 free after placing
    assert placed(place([small, large], [task(1)], Strategy.SPREAD))[1].node == "large"


def test_spread_spreads_a_batch() -> None:
    nodes = [node("a", 4), node("b", 4), node("c", 4)]
    result = place(nodes, [task(i) for i in range(3)], Strategy.SPREAD)
    assert sorted(a.node for a in placed(result).values()) == ["a", "b", "c"]


def test_binpack_fills_one_node_first() -> None:
    nodes = [node("a", 4), node("b", 4)]
    result = place(nodes, [task(i) for i in range(3)], Strategy.BINPACK)
    assert [a.node for a in placed(result).values()] == ["a", "a", "a"]


def test_priority_then_id_order() -> None:
    nodes = [node("n", 2)]
    queue = [task(1, 2), task(3, 2, priority=5), task(2, 2, priority=5)]
    result = place(nodes, queue)
    assert list(placed(result)) == [2]
    assert set(result.waiting) == {1, 3}


def test_memory_none_counts_as_zero() -> None:
    nodes = [node("n", 4, 1 * G, used=NodeUsage(memory=1 * G))]
    alloc = placed(place(nodes, [task(1)]))[1]
    assert alloc.memory == 0


def test_memory_limits_placement() -> None:
    nodes = [node("n", 4, 4 * G, used=NodeUsage(memory=3 * G))]
    result = place(nodes, [task(1, memory=2 * G), task(2, memory=G)])
    assert placed(result)[2].memory == G
    assert result.waiting[1] == "needs 2G memory, 1G free on n"


def test_input_usage_is_not_modified() -> None:
    used = NodeUsage(cores=1, memory=G, gpu_ids={0}, pinned_cpus={0})
    nodes = [node("n", 4, 4 * G, numa=zones(2, 2), gpus=2, used=used)]
    before = copy.deepcopy(used)
    place(nodes, [task(1, 1, G, 1, target="n:0"), task(2, 2)])
    assert used == before


# --------------------------------------------------------------------------- place: GPUs and NUMA


def test_gpus_take_the_lowest_free_ids() -> None:
    nodes = [node("n", 8, gpus=4, used=NodeUsage(cores=1, gpu_ids={1}))]
    result = place(nodes, [task(1, gpus=2), task(2, gpus=1), task(3, gpus=1)])
    assert placed(result)[1].gpu_ids == (0, 2)
    assert placed(result)[2].gpu_ids == (3,)
    assert result.waiting[3] == "needs 1 GPU, 0 free on n"


def test_held_allocation_of_paused_task_blocks_its_gpus() -> None:
    paused = Allocation("n", 1, G, gpu_ids=(0,))
    nodes = [node("n", 8, gpus=2, used=NodeUsage.of([paused]))]
    result = place(nodes, [task(1, target="n::0"), task(2, gpus=1), task(3, gpus=1)])
    assert result.waiting[1] == "GPU 0 on n is in use"
    assert placed(result)[2].gpu_ids == (1,)
    assert result.waiting[3] == "needs 1 GPU, 0 free on n"


def test_named_gpus_are_given_exactly() -> None:
    nodes = [node("n", 8, gpus=4)]
    alloc = placed(place(nodes, [task(1, gpus=2, target="n::3,1")]))[1]
    assert (alloc.gpu_ids, alloc.numa, alloc.cpuset) == ((1, 3), None, ())


def test_untargeted_gpu_request_skips_nodes_without_free_gpus() -> None:
    nodes = [node("cpu", 64), node("gpu", 8, gpus=1)]
    alloc = placed(place(nodes, [task(1, gpus=1)]))[1]
    assert (alloc.node, alloc.gpu_ids) == ("gpu", (0,))


def test_numa_target_gets_lowest_unpinned_cpus() -> None:
    used = NodeUsage(cores=1, pinned_cpus={4})
    nodes = [node("n", 8, numa=zones(4, 4), used=used)]
    result = place(nodes, [task(1, 2, target="n:1"), task(2, 2, target="n:1")])
    first = placed(result)[1]
    assert (first.numa, first.cpuset) == (1, (5, 6))
    assert result.waiting[2] == "needs 2 CPUs of NUMA zone 1, 1 unpinned on n"


def test_unpinned_task_does_not_take_numa_cpus() -> None:
    nodes = [node("n", 8, numa=zones(4, 4))]
    result = place(nodes, [task(1, 2), task(2, 4, target="n:0")])
    assert placed(result)[1].cpuset == ()
    assert placed(result)[2].cpuset == (0, 1, 2, 3)


# --------------------------------------------------------------------------- place: waiting


def test_unschedulable_nodes_get_nothing() -> None:
    nodes = [node("off", 64, schedulable=False), node("on", 2)]
    result = place(nodes, [task(1, 2), task(2, 2), task(3, target="off")])
    assert placed(result)[1].node == "on"
    assert result.waiting[2] == "needs 2 cores, 0 free on on"
    assert result.waiting[3] == "off is offline or draining"


def test_no_schedulable_node() -> None:
    result = place([node("off", schedulable=False)], [task(1)])
    assert result.waiting[1] == "no node is schedulable (all are offline or draining)"


def test_untargeted_waiting_reasons() -> None:
    nodes = [
        node("a", 4, 16 * G, used=NodeUsage(cores=2, memory=10 * G)),
        node("b", 4, 4 * G, used=NodeUsage(cores=3)),
    ]
    result = place(nodes, [task(1, 4), task(2, 1, 8 * G), task(3, 2, 8 * G)])
    assert result.waiting[1] == "no node has 4 free cores now"
    assert result.waiting[2] == "no node has 8G free memory now"
    assert result.waiting[3] == "no node has 2 free cores and 8G free memory at once now"


def test_task_that_can_never_fit_names_why() -> None:
    nodes = [node("n", 2, gpus=1)]
    result = place(nodes, [task(1, 3), task(2, target="n::5"), task(3, target="gone")])
    assert result.waiting[1] == "no node has 3 cores (largest: 2)"
    assert result.waiting[2] == "unknown GPU id 5 on node 'n'; its GPUs: 0"
    assert result.waiting[3] == "unknown node 'gone'"


def test_invalid_request_waits_instead_of_crashing() -> None:
    result = place([node("n")], [task(1, cores=0)])
    assert result.waiting[1] == "invalid request: cores must be at least 1 (got 0)"


# --------------------------------------------------------------------------- backfill, starvation


def test_backfill_places_small_task_behind_blocked_big_one() -> None:
    nodes = [node("n", 4, used=NodeUsage(cores=2))]
    result = place(nodes, [task(1, 4), task(2, 1)], now=100, starvation_after=300)
    assert list(placed(result)) == [2]
    assert result.waiting[1] == "needs 4 cores, 2 free on n"


def test_starving_task_reserves_its_node_against_backfill() -> None:
    nodes = [node("n", 4, used=NodeUsage(cores=2))]
    queue = [task(1, 4, enqueued_at=0), task(2, 1, enqueued_at=500)]
    result = place(nodes, queue, now=1000, starvation_after=300)
    assert result.placements == ()
    assert result.reservations == (Reservation(1, "n", "needs 4 cores, 2 free on n"),)
    assert result.waiting[1] == "needs 4 cores, 2 free on n; n is reserved for it (waited too long)"
    assert result.waiting[2] == "fits only on nodes reserved for starving tasks: n"


def test_starvation_reserves_the_freest_node_only() -> None:
    nodes = [node("a", 8, used=NodeUsage(cores=6)), node("b", 8, used=NodeUsage(cores=5))]
    queue = [task(1, 8), task(2, 1), task(3, 1, target="b")]
    result = place(nodes, queue, now=1000, starvation_after=300)
    assert placed(result)[2].node == "a"
    assert [(r.task_id, r.node) for r in result.reservations] == [(1, "b")]
    assert result.waiting[3] == "b is reserved for task 1, which has waited too long"


def test_starving_targeted_task_reserves_its_target() -> None:
    nodes = [node("a", 4, used=NodeUsage(cores=3)), node("b", 4)]
    queue = [task(1, 2, target="a"), task(2, 1), task(3, 1)]
    result = place(nodes, queue, Strategy.BINPACK, now=1000, starvation_after=300)
    assert [a.node for a in placed(result).values()] == ["b", "b"]


def test_not_yet_starving_task_reserves_nothing() -> None:
    nodes = [node("n", 4, used=NodeUsage(cores=2))]
    queue = [task(1, 4, enqueued_at=800), task(2, 1)]
    result = place(nodes, queue, now=1000, starvation_after=300)
    assert list(placed(result)) == [2]


def test_task_that_can_never_fit_reserves_nothing() -> None:
    nodes = [node("n", 4)]
    result = place(nodes, [task(1, 64), task(2, 1)], now=1000, starvation_after=0)
    assert list(placed(result)) == [2]


# --------------------------------------------------------------------------- properties


@st.composite
def clusters(draw: st.DrawFn) -> list[NodeSnapshot]:
    out: list[NodeSnapshot] = []
    for index in range(draw(st.integers(min_value=1, max_value=5))):
        sizes = draw(st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=3))
        numa = zones(*sizes, memory=draw(st.integers(min_value=1, max_value=8)) * G)
        cores = sum(sizes)
        memory = sum(z.memory for z in numa)
        gpus = frozenset(range(draw(st.integers(min_value=0, max_value=4))))
        used_cores = draw(st.just(0) | st.integers(min_value=0, max_value=cores))
        all_cpus = sorted(frozenset().union(*(z.cpus for z in numa)))
        pinned = draw(st.lists(st.sampled_from(all_cpus), unique=True, max_size=used_cores))
        usage = NodeUsage(
            cores=used_cores,
            memory=draw(st.just(0) | st.integers(min_value=0, max_value=memory)),
            gpu_ids=set(draw(st.sets(st.sampled_from(sorted(gpus)))) if gpus else set()),
            pinned_cpus=set(pinned),
        )
        capacity = NodeCapacity(cores, memory, numa, gpus)
        schedulable = draw(st.sampled_from([True, True, True, False]))
        out.append(NodeSnapshot(f"n{index}", capacity, usage, schedulable))
    return out


def targets(nodes: Sequence[NodeSnapshot]) -> st.SearchStrategy[TargetSpec | None]:
    """Mostly no target; targets may name a missing node, NUMA zone or GPU (it waits)."""

    def on(n: NodeSnapshot) -> st.SearchStrategy[TargetSpec]:
        zones = st.sampled_from([z.id for z in n.capacity.numa])
        gpus = st.sets(st.sampled_from([*sorted(n.capacity.gpus), 7]), max_size=2).map(tuple)
        return st.builds(
            TargetSpec,
            node=st.just(n.name),
            numa=st.one_of(st.none(), zones, zones, st.just(7)),
            gpus=st.one_of(st.just(()), st.just(()), gpus),
        )

    existing = st.sampled_from(nodes).flatmap(on)
    missing = st.builds(TargetSpec, node=st.just("gone"))
    return st.one_of(st.none(), st.none(), existing, existing, existing, missing)


REQUESTS = st.builds(
    ResourceRequest,
    cores=st.sampled_from([1, 1, 2, 2, 3, 4]),
    memory=st.none() | st.integers(min_value=1, max_value=8).map(lambda g: g * G // 2),
    gpus=st.sampled_from([0, 0, 0, 1, 2]),
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[NodeSnapshot], list[QueuedTask]]:
    """A cluster and a queue of up to 12 tasks for it."""
    nodes = draw(clusters())
    ids = draw(st.lists(st.integers(min_value=1, max_value=10**6), unique=True, max_size=12))
    return nodes, [
        QueuedTask(
            task_id,
            draw(REQUESTS),
            draw(targets(nodes)),
            draw(st.integers(min_value=0, max_value=2)),
            draw(st.floats(min_value=0, max_value=1000)),
        )
        for task_id in ids
    ]


def possible(t: QueuedTask, nodes: Sequence[NodeSnapshot]) -> bool:
    """Whether the task passes submit-time validation (else it waits for good)."""
    try:
        validate(t.request, t.target, nodes)
    except PlacementError:
        return False
    return True


def fits_now(t: QueuedTask, n: NodeSnapshot, usage: NodeUsage) -> bool:
    """An independent statement of "fits right now" for the no-missed-placement check."""
    cap, req, target = n.capacity, t.request, t.target
    if req.cores > cap.cores - usage.cores or (req.memory or 0) > cap.memory - usage.memory:
        return False
    free_gpus = cap.gpus - usage.gpu_ids
    if target is not None and target.gpus:
        if not set(target.gpus) <= free_gpus:
            return False
    elif req.gpus > len(free_gpus):
        return False
    if target is not None and target.numa is not None:
        zone = cap.zone(target.numa)
        if zone is None or len(zone.cpus - usage.pinned_cpus) < req.cores:
            return False
    return True


def check_invariants(
    nodes: Sequence[NodeSnapshot], queue: Sequence[QueuedTask], result: SchedulingResult
) -> dict[str, NodeUsage]:
    """Assert the placements are sound; return the usage they lead to."""
    by_id = {t.id: t for t in queue}
    by_name = {n.name: n for n in nodes}
    placed_ids = [p.task_id for p in result.placements]
    assert len(placed_ids) == len(set(placed_ids))
    assert not set(placed_ids) & set(result.waiting)
    assert set(placed_ids) | set(result.waiting) == set(by_id)
    usage = {n.name: copy.deepcopy(n.usage) for n in nodes}
    for p in result.placements:
        t, a = by_id[p.task_id], p.allocation
        n = by_name[a.node]
        assert n.schedulable
        assert (a.cores, a.memory) == (t.request.cores, t.request.memory or 0)
        assert fits(a, n.capacity, usage[a.node]), "placed where it does not fit"
        if t.target is None:
            assert (a.numa, a.cpuset) == (None, ())
            assert len(a.gpu_ids) == t.request.gpus
        else:
            assert a.node == t.target.node
            assert a.numa == t.target.numa
            if t.target.gpus:
                assert a.gpu_ids == t.target.gpus
            else:
                assert len(a.gpu_ids) == t.request.gpus
            if t.target.numa is None:
                assert a.cpuset == ()
            else:
                zone = n.capacity.zone(t.target.numa)
                assert zone is not None
                assert set(a.cpuset) <= zone.cpus
                assert len(a.cpuset) == t.request.cores
        usage[a.node].add(a)
    return usage


@PROPERTY
@given(
    scenario=scenarios(),
    strategy=st.sampled_from(list(Strategy)),
    starvation_after=st.floats(min_value=0, max_value=2000),
)
def test_placements_are_always_sound(
    scenario: tuple[list[NodeSnapshot], list[QueuedTask]],
    strategy: Strategy,
    starvation_after: float,
) -> None:
    nodes, queue = scenario
    before = copy.deepcopy(nodes)
    result = place(nodes, queue, strategy, now=1000.0, starvation_after=starvation_after)
    check_invariants(nodes, queue, result)
    assert nodes == before
    assert result == place(nodes, queue, strategy, 1000.0, starvation_after)
    # A node reserved by a starving task gets no task ordered after it.
    rank = {t.id: (-t.priority, t.id) for t in queue}
    by_id = {t.id: t for t in queue}
    assert len({r.node for r in result.reservations}) == len(result.reservations)
    for r in result.reservations:
        assert 1000.0 - by_id[r.task_id].enqueued_at > starvation_after
        assert result.waiting[r.task_id] == r.reason
        for p in result.placements:
            assert p.allocation.node != r.node or rank[p.task_id] < rank[r.task_id]


@PROPERTY
@given(scenario=scenarios(), strategy=st.sampled_from(list(Strategy)))
def test_without_starvation_no_waiting_task_fits_anywhere(
    scenario: tuple[list[NodeSnapshot], list[QueuedTask]], strategy: Strategy
) -> None:
    nodes, queue = scenario
    result = place(nodes, queue, strategy, now=1000.0, starvation_after=10**9)
    final = check_invariants(nodes, queue, result)
    for t in queue:
        if t.id in result.waiting and possible(t, nodes):
            candidates = [n for n in nodes if n.schedulable]
            if t.target is not None:
                candidates = [n for n in candidates if n.name == t.target.node]
            assert not any(fits_now(t, n, final[n.name]) for n in candidates), (
                f"task {t.id} waits ({result.waiting[t.id]}) but fits now"
            )


@PROPERTY
@given(
    nodes=clusters(),
    request=REQUESTS,
    ids=st.lists(st.integers(min_value=1, max_value=10**6), unique=True, min_size=1, max_size=12),
    enqueued_at=st.floats(min_value=0, max_value=1000),
    strategy=st.sampled_from(list(Strategy)),
    data=st.data(),
)
def test_identical_tasks_are_placed_first_come_first_served(
    nodes: list[NodeSnapshot],
    request: ResourceRequest,
    ids: list[int],
    enqueued_at: float,
    strategy: Strategy,
    data: st.DataObject,
) -> None:
    target = data.draw(targets(nodes))
    queue = [QueuedTask(i, request, target, 1, enqueued_at) for i in ids]
    result = place(nodes, queue, strategy, now=1000.0, starvation_after=300.0)
    check_invariants(nodes, queue, result)
    order = sorted(ids)
    placed_ids = {p.task_id for p in result.placements}
    count = len(placed_ids)
    assert placed_ids == set(order[:count]), "a later identical task jumped the queue"
    assert [p.task_id for p in result.placements] == order[:count]


@st.composite
def like_queues(draw: st.DrawFn) -> tuple[list[NodeSnapshot], list[QueuedTask]]:
    """A cluster and a queue of up to 16 tasks drawn from a few requests and targets, so
    that many tasks of the queue ask for the same thing."""
    nodes = draw(clusters())
    kinds = draw(st.lists(st.tuples(REQUESTS, targets(nodes)), min_size=1, max_size=3))
    ids = draw(st.lists(st.integers(min_value=1, max_value=10**6), unique=True, max_size=16))
    return nodes, [QueuedTask(i, *draw(st.sampled_from(kinds))) for i in ids]


def after(nodes: Sequence[NodeSnapshot], placements: Sequence[Placement]) -> list[NodeSnapshot]:
    """The snapshots with ``placements`` held as well."""
    usage = working_usage(nodes)
    for p in placements:
        usage[p.allocation.node].add(p.allocation)
    return [NodeSnapshot(n.name, n.capacity, usage[n.name], n.schedulable) for n in nodes]


@PROPERTY
@given(scenario=like_queues(), strategy=st.sampled_from(list(Strategy)))
def test_each_task_is_decided_as_if_it_were_alone_after_those_before_it(
    scenario: tuple[list[NodeSnapshot], list[QueuedTask]], strategy: Strategy
) -> None:
    """A pass decides each task (its allocation, or why it waits) as a pass over that task
    alone would, on the cluster holding what the tasks before it took."""
    nodes, queue = scenario
    result = place(nodes, queue, strategy, now=1000.0, starvation_after=10**9)
    earlier: list[Placement] = []
    for t in sorted(queue, key=lambda t: (-t.priority, t.id)):
        alone = place(after(nodes, earlier), [t], strategy, 1000.0, 10**9)
        mine = [p for p in result.placements if p.task_id == t.id]
        assert list(alone.placements) == mine
        assert alone.waiting.get(t.id) == result.waiting.get(t.id)
        earlier += mine


def test_a_queue_of_like_tasks_on_a_full_cluster_all_wait_for_the_same_reason() -> None:
    full = [node("a", 2, used=NodeUsage(cores=2)), node("b", 4, used=NodeUsage(cores=4))]
    result = place(full, [task(i) for i in range(1, 501)])
    assert result.placements == ()
    assert set(result.waiting.values()) == {"no node has 1 free core now"}
    assert len(result.waiting) == 500


def test_result_types() -> None:
    result = place([node("n")], [task(1)])
    assert isinstance(result.placements[0], Placement)
    assert result.waiting == {}


# -- batch caps (--max-parallel) -------------------------------------------------------


def batch_task(task_id: int, batch: int, cores: int = 1, priority: int = 0) -> QueuedTask:
    return QueuedTask(task_id, ResourceRequest(cores), None, priority, 0.0, batch)


def test_a_capped_batch_places_at_most_its_cap_and_others_go_past_it() -> None:
    queue = [batch_task(i, batch=100) for i in range(1, 7)] + [task(7), batch_task(8, batch=200)]
    result = place([node("a", cores=16)], queue, caps={100: BatchCap(limit=3)})
    assert sorted(placed(result)) == [1, 2, 3, 7, 8]  # 200 has no cap
    assert result.waiting == {i: "its batch runs at most 3 at once" for i in (4, 5, 6)}


def test_a_cap_counts_the_batch_s_tasks_already_running() -> None:
    queue = [batch_task(i, batch=100) for i in range(1, 5)]
    result = place([node("a", cores=16)], queue, caps={100: BatchCap(limit=3, active=2)})
    assert sorted(placed(result)) == [1]
    result = place([node("a", cores=16)], queue, caps={100: BatchCap(limit=3, active=3)})
    assert placed(result) == {}


def test_a_capped_task_that_waits_reserves_no_node() -> None:
    """Held back by its cap, an old task does not starve-reserve a node for itself."""
    old = QueuedTask(1, ResourceRequest(1), None, 0, 0.0, 100)
    result = place(
        [node("a", cores=2)],
        [old, task(2)],
        now=10_000.0,
        starvation_after=1.0,
        caps={100: BatchCap(limit=1, active=1)},
    )
    assert sorted(placed(result)) == [2]


@PROPERTY
@given(
    st.lists(st.tuples(st.integers(1, 3), st.integers(1, 3)), min_size=1, max_size=40),
    st.dictionaries(st.integers(1, 3), st.tuples(st.integers(1, 4), st.integers(0, 4))),
)
def test_no_batch_ever_exceeds_its_cap(
    members: list[tuple[int, int]], caps: dict[int, tuple[int, int]]
) -> None:
    queue = [batch_task(i, batch, cores) for i, (batch, cores) in enumerate(members, 1)]
    batch_caps = {b: BatchCap(limit, active) for b, (limit, active) in caps.items()}
    result = place([node("a", cores=8), node("b", cores=8)], queue, caps=batch_caps)
    by_id = {t.id: t for t in queue}
    for batch, cap in batch_caps.items():
        started = sum(1 for p in result.placements if by_id[p.task_id].batch == batch)
        assert cap.active + started <= max(cap.limit, cap.active)
        waiting = [t for t in queue if t.batch == batch and t.id in result.waiting]
        if cap.active + started < cap.limit:
            assert all("at most" not in result.waiting[t.id] for t in waiting)


# -- fits: the one allocation check (scheduler and the host's applier) ----------------------

FIT_NODE = node("f", 4, 8 * G, numa=zones(2, 2, memory=4 * G), gpus=2)


@pytest.mark.parametrize(
    ("allocation", "used", "expected"),
    [
        (Allocation("f", 4, 8 * G), NodeUsage(), True),
        (Allocation("f", 1, 0, (0, 1), 1, (2,)), NodeUsage(3, 0, set(), {0, 1, 3}), True),
        (Allocation("f", 5, 0), NodeUsage(), False),  # more cores than the node has
        (Allocation("f", 2, 0), NodeUsage(cores=3), False),  # cores held by others
        (Allocation("f", 1, 8 * G + 1), NodeUsage(), False),  # memory
        (Allocation("f", 1, 2 * G), NodeUsage(memory=7 * G), False),
        (Allocation("f", 1, 0, (2,)), NodeUsage(), False),  # no such GPU
        (Allocation("f", 1, 0, (1,)), NodeUsage(gpu_ids={1}), False),  # GPU in use
        (Allocation("f", 2, 0, (0, 0)), NodeUsage(), False),  # one GPU given twice
        (Allocation("f", 1, 0, (), 5, (0,)), NodeUsage(), False),  # no such NUMA zone
        (Allocation("f", 1, 0, (), 0, (2,)), NodeUsage(), False),  # CPU of another zone
        (Allocation("f", 1, 0, (), 0, (1,)), NodeUsage(pinned_cpus={1}), False),  # pinned
        (Allocation("f", 2, 0, (), 0, (1, 1)), NodeUsage(), False),  # one CPU twice
    ],
)
def test_fits(allocation: Allocation, used: NodeUsage, expected: bool) -> None:
    assert fits(allocation, FIT_NODE.capacity, used) is expected


def test_take_counts_only_what_fits_a_schedulable_node() -> None:
    closed = node("c", 4, schedulable=False)
    usage = working_usage([FIT_NODE, closed])
    assert not take(closed, usage["c"], Allocation("c", 1, 0))
    assert take(FIT_NODE, usage["f"], Allocation("f", 2, G, (1,), 0, (0, 1)))
    assert not take(FIT_NODE, usage["f"], Allocation("f", 1, 0, (), 0, (1,)))
    assert usage == {
        "f": NodeUsage(2, G, {1}, {0, 1}),
        "c": NodeUsage(),
    }
    assert FIT_NODE.usage == NodeUsage()  # the snapshot itself is not modified


@PROPERTY
@given(nodes=clusters(), request=REQUESTS, data=st.data())
def test_a_request_fits_now_exactly_when_its_allocation_fits(
    nodes: list[NodeSnapshot], request: ResourceRequest, data: st.DataObject
) -> None:
    """The scheduler's request check (``free_problem``) and the allocation check the
    applier repeats (``fits``) agree, for every node, target and usage."""
    n = data.draw(st.sampled_from(nodes))
    target = data.draw(targets([n]))
    if target is not None and target.node != n.name:
        target = None
    usage = n.usage
    a = allocate(request, target, n.name, n.capacity, usage)
    complete = len(a.gpu_ids) == gpu_count(request, target) and (
        target is None or target.numa is None or len(a.cpuset) == request.cores
    )
    problem = free_problem(request, target, n.name, n.capacity, usage)
    assert (problem is None) == (fits(a, n.capacity, usage) and complete), problem
