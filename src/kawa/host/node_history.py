"""Each node's recent measurements, from its heartbeats, in two bounded rings in memory:
about an hour at heartbeat resolution, and a day of one-minute means. Nothing is
stored: a host restart starts them empty."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kawa.protocol.history import GpuPoint, HistoryPoint, HistoryWindow, NodeHistory
from kawa.protocol.nodes import NodeUsageSample

FINE_SECONDS = 3600.0
"""How far back the heartbeat-resolution ring reaches."""
MINUTE = 60.0
COARSE_POINTS = 24 * 60
"""One-minute means kept: a day."""
MAX_FINE_POINTS = 7200
"""The fine ring's bound whatever the heartbeat interval (0.5 s heartbeats: an hour)."""


@dataclass(frozen=True, slots=True)
class Gpu:
    index: int
    util: float | None
    memory_used: int | None
    memory_total: int | None
    temperature: float | None
    power_w: float | None


@dataclass(frozen=True, slots=True)
class Point:
    t: float
    cpu_percent: float
    memory_used: int
    memory_total: int
    gpus: tuple[Gpu, ...]

    def wire(self) -> HistoryPoint:
        return HistoryPoint(
            t=self.t,
            cpu_percent=self.cpu_percent,
            memory_used=self.memory_used,
            memory_total=self.memory_total,
            gpus=[
                GpuPoint(
                    index=g.index,
                    util=g.util,
                    memory_used=g.memory_used,
                    memory_total=g.memory_total,
                    temperature=g.temperature,
                    power_w=g.power_w,
                )
                for g in self.gpus
            ],
        )


def point_of(sample: NodeUsageSample, at: float, memory_total: int) -> Point:
    """A heartbeat's sample as a point at ``at`` (the host's clock); ``memory_total`` is
    used when the sample does not carry the machine's total (older runners)."""
    return Point(
        t=at,
        cpu_percent=sample.cpu_percent,
        memory_used=sample.memory_used,
        memory_total=sample.memory_total or memory_total,
        gpus=tuple(
            Gpu(
                index=g.index,
                util=g.utilization,
                memory_used=g.memory_used if g.memory_total else None,
                memory_total=g.memory_total or None,
                temperature=g.temperature,
                power_w=g.power_watts,
            )
            for g in sample.gpus
        ),
    )


def _mean(values: Iterable[float | int | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _mean_int(values: Iterable[int | None]) -> int | None:
    found = _mean(values)
    return None if found is None else round(found)


def mean_point(points: Sequence[Point], t: float) -> Point:
    """The mean of ``points`` at ``t``: each measurement over the points that have it,
    GPUs matched by index."""
    by_index: dict[int, list[Gpu]] = {}
    for p in points:
        for g in p.gpus:
            by_index.setdefault(g.index, []).append(g)
    return Point(
        t=t,
        cpu_percent=_mean(p.cpu_percent for p in points) or 0.0,
        memory_used=_mean_int(p.memory_used for p in points) or 0,
        memory_total=points[-1].memory_total,
        gpus=tuple(
            Gpu(
                index=index,
                util=_mean(g.util for g in gs),
                memory_used=_mean_int(g.memory_used for g in gs),
                memory_total=_mean_int(g.memory_total for g in gs),
                temperature=_mean(g.temperature for g in gs),
                power_w=_mean(g.power_w for g in gs),
            )
            for index, gs in sorted(by_index.items())
        ),
    )


Packed = tuple[float, float, int, int, tuple[tuple[int | float | None, ...], ...]]
"""A point as plain tuples of numbers. The garbage collector stops tracking such tuples
after the passes they survive, so hundreds of thousands of kept points add nothing
to its full passes (as objects they made each pass of a 500-node host take ~0.2 s)."""


def _pack(p: Point) -> Packed:
    gpus = tuple(
        (g.index, g.util, g.memory_used, g.memory_total, g.temperature, g.power_w)
        for g in p.gpus
    )
    return (p.t, p.cpu_percent, p.memory_used, p.memory_total, gpus)


def _unpack(packed: Packed) -> Point:
    t, cpu, used, total, gpus = packed
    return Point(t, cpu, used, total, tuple(Gpu(*g) for g in gpus))  # type: ignore[arg-type]


class Series:
    """One node's two rings (packed points), and the minute being gathered."""

    def __init__(self, fine_points: int) -> None:
        self.fine: deque[Packed] = deque(maxlen=fine_points)
        self.coarse: deque[Packed] = deque(maxlen=COARSE_POINTS)
        self._minute: float | None = None
        self._gathering: list[Point] = []

    def add(self, point: Point) -> None:
        self.fine.append(_pack(point))
        minute = math.floor(point.t / MINUTE) * MINUTE
        if self._minute is not None and minute != self._minute:
            self._close()
        self._minute = minute
        self._gathering.append(point)

    def _close(self) -> None:
        if self._gathering and self._minute is not None:
            self.coarse.append(_pack(mean_point(self._gathering, self._minute)))
        self._gathering = []

    def heartbeats(self) -> list[Point]:
        """The hour's points at heartbeat resolution."""
        return [_unpack(p) for p in self.fine]

    def minutes(self) -> list[Point]:
        """The day's minute means, the minute under way last (its mean so far)."""
        points = [_unpack(p) for p in self.coarse]
        if self._gathering and self._minute is not None:
            points.append(mean_point(self._gathering, self._minute))
        return points


class NodeHistories:
    """The rings of every node that has sent a heartbeat since the host started."""

    def __init__(self, heartbeat_interval: float) -> None:
        self.heartbeat_interval = heartbeat_interval
        per_hour = math.ceil(FINE_SECONDS / heartbeat_interval)
        self._fine_points = max(1, min(MAX_FINE_POINTS, per_hour))
        self._series: dict[str, Series] = {}

    def add(self, node: str, point: Point) -> None:
        series = self._series.get(node)
        if series is None:
            series = self._series[node] = Series(self._fine_points)
        series.add(point)

    def window(self, node: str, window: HistoryWindow, now: float | None = None) -> NodeHistory:
        """The node's points in ``window`` up to ``now`` (default: the clock), oldest first."""
        now = time.time() if now is None else now
        series = self._series.get(node)
        if window == "1h":
            points = series.heartbeats() if series else []
            resolution, reach = self.heartbeat_interval, FINE_SECONDS
        else:
            points = series.minutes() if series else []
            resolution, reach = MINUTE, COARSE_POINTS * MINUTE
        points = [p for p in points if p.t > now - reach]
        return NodeHistory(node=node, resolution_s=resolution, points=[p.wire() for p in points])
