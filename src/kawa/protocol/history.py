"""A node's recent measurements (``GET /nodes/{name}/history``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kawa.protocol.common import WireModel

HistoryWindow = Literal["1h", "24h"]


class GpuPoint(WireModel):
    """One GPU's measurements at a point; None where the GPU or its driver does not say."""

    index: int
    util: float | None = None
    """Utilisation in percent."""
    memory_used: int | None = None
    """Bytes."""
    memory_total: int | None = None
    """Bytes."""
    temperature: float | None = None
    """°C."""
    power_w: float | None = None


class HistoryPoint(WireModel):
    """A node's measurements at ``t`` (one heartbeat, or the mean of a minute's)."""

    t: float = Field(description="unix seconds (the host's clock)")
    cpu_percent: float
    memory_used: int = Field(description="bytes")
    memory_total: int = Field(description="bytes")
    gpus: list[GpuPoint] = []


class NodeHistory(WireModel):
    """Oldest point first. ``1h``: one point per heartbeat; ``24h``: one per minute (the
    mean of its heartbeats). Kept in the host's memory only: a host restart clears it."""

    node: str
    resolution_s: float
    points: list[HistoryPoint]
