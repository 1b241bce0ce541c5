"""The node history rings: heartbeat points for an hour, minute means for a day."""

from __future__ import annotations

from datetime import UTC, datetime

from kawa.host.node_history import COARSE_POINTS, Gpu, NodeHistories, Point, mean_point, point_of
from kawa.protocol.nodes import GpuInfo, NodeUsageSample

T0 = 1_800_000_000.0  # a minute boundary (divisible by 60)


def point(t: float, cpu: float, used: int = 100, gpu_util: float | None = None) -> Point:
    gpus = () if gpu_util is None else (Gpu(0, gpu_util, 10, 20, 50.0, None),)
    return Point(t, cpu, used, 1000, gpus)


def test_the_hour_window_has_every_heartbeat_in_order() -> None:
    h = NodeHistories(heartbeat_interval=2.0)
    for i in range(5):
        h.add("n1", point(T0 + 2 * i, cpu=10.0 * i))
    got = h.window("n1", "1h", now=T0 + 10)
    assert got.resolution_s == 2.0
    assert [p.cpu_percent for p in got.points] == [0.0, 10.0, 20.0, 30.0, 40.0]
    assert [p.t for p in got.points] == [T0 + 2 * i for i in range(5)]


def test_the_hour_ring_is_bounded_by_the_heartbeat_interval() -> None:
    h = NodeHistories(heartbeat_interval=60.0)  # 60 points make an hour
    for i in range(100):
        h.add("n1", point(T0 + 60 * i, cpu=1.0))
    got = h.window("n1", "1h", now=T0 + 60 * 99)
    assert len(got.points) == 60
    assert got.points[-1].t == T0 + 60 * 99


def test_the_hour_window_leaves_out_points_older_than_an_hour() -> None:
    h = NodeHistories(heartbeat_interval=1.0)
    h.add("n1", point(T0, cpu=1.0))
    h.add("n1", point(T0 + 4000, cpu=2.0))
    assert [p.cpu_percent for p in h.window("n1", "1h", now=T0 + 4000).points] == [2.0]


def test_the_day_window_averages_each_minute_and_shows_the_current_one() -> None:
    h = NodeHistories(heartbeat_interval=20.0)
    for t, cpu in ((0, 10.0), (20, 20.0), (40, 30.0), (60, 50.0), (80, 70.0)):
        h.add("n1", point(T0 + t, cpu, used=int(cpu) * 10, gpu_util=cpu))
    got = h.window("n1", "24h", now=T0 + 80)
    assert got.resolution_s == 60.0
    assert [(p.t, p.cpu_percent, p.memory_used) for p in got.points] == [
        (T0, 20.0, 200),
        (T0 + 60, 60.0, 600),  # the minute under way: its mean so far
    ]
    assert got.points[0].gpus[0].util == 20.0
    assert got.points[0].gpus[0].power_w is None  # never known stays unknown


def test_the_day_ring_keeps_a_day_of_minutes() -> None:
    h = NodeHistories(heartbeat_interval=60.0)
    for i in range(COARSE_POINTS + 10):
        h.add("n1", point(T0 + 60 * i, cpu=float(i % 100)))
    got = h.window("n1", "24h", now=T0 + 60 * (COARSE_POINTS + 9))
    assert len(got.points) <= COARSE_POINTS
    assert got.points[-1].t == T0 + 60 * (COARSE_POINTS + 9)


def test_a_node_without_heartbeats_has_no_points() -> None:
    h = NodeHistories(heartbeat_interval=1.0)
    assert h.window("ghost", "1h").points == []
    assert h.window("ghost", "24h").points == []


def test_mean_matches_gpus_by_index_and_skips_unknown_values() -> None:
    gpus = (Gpu(0, 10.0, 1, 8, None, 100.0), Gpu(1, None, 2, 8, 40.0, None))
    a = Point(T0, 10.0, 100, 1000, gpus)
    b = Point(T0 + 1, 30.0, 300, 1000, (Gpu(1, 50.0, 4, 8, 60.0, None),))
    m = mean_point([a, b], T0)
    assert (m.cpu_percent, m.memory_used) == (20.0, 200)
    assert m.gpus == (Gpu(0, 10.0, 1, 8, None, 100.0), Gpu(1, 50.0, 3, 8, 50.0, None))


def test_a_heartbeat_sample_becomes_a_point() -> None:
    sample = NodeUsageSample(
        at=datetime.now(UTC),
        cpu_percent=12.5,
        memory_used=300,
        memory_percent=30.0,
        gpus=[
            GpuInfo(
                index=0,
                memory_total=16,
                memory_used=4,
                utilization=70.0,
                temperature=66.0,
                power_watts=90.0,
            ),
            GpuInfo(index=1),  # nothing known
        ],
    )
    p = point_of(sample, T0, memory_total=1000)  # the sample has no machine total
    assert (p.t, p.cpu_percent, p.memory_used, p.memory_total) == (T0, 12.5, 300, 1000)
    assert p.gpus[0] == Gpu(0, 70.0, 4, 16, 66.0, 90.0)
    assert p.gpus[1] == Gpu(1, None, None, None, None, None)
    with_total = sample.model_copy(update={"memory_total": 2000})
    assert point_of(with_total, T0, memory_total=1000).memory_total == 2000


def test_kept_points_are_left_out_of_the_garbage_collectors_passes() -> None:
    """A 500-node host keeps hundreds of thousands of points: as tracked objects they
    made every full collection slow. Kept packed, the collector stops tracking them."""
    import gc

    from kawa.host.node_history import Series

    series = Series(10)
    for k in range(70):
        series.add(point(60.0 * k, 5.0, gpu_util=50.0))
    for _ in range(3):  # a pass stops tracking a tuple once what it holds is untracked:
        gc.collect()  # a GPU, then the GPUs, then the point holding them
    kept = [*series.fine, *series.coarse]
    assert len(kept) == 10 + 69
    assert not any(gc.is_tracked(p) for p in kept)
    got = series.heartbeats()
    assert got[-1] == point(60.0 * 69, 5.0, gpu_util=50.0)  # and read back as they were
