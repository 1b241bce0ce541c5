"""What this machine has (cores, memory, NUMA zones from sysfs, GPUs) and how busy it is."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

import psutil

from kawa.protocol.nodes import NodeInventory, NodeUsageSample, NumaUsage, NumaZoneInfo
from kawa.runner.gpus import GpuProbe


def parse_cpulist(text: str) -> list[int]:
    """Parse a sysfs cpu list such as ``0-3,8,10-11``."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


def read_numa(sysfs_root: Path) -> list[NumaZoneInfo]:
    """NUMA zones from ``<sysfs>/devices/system/node/node*/{cpulist,meminfo}``."""
    base = sysfs_root / "devices" / "system" / "node"
    zones = []
    for entry in sorted(base.glob("node[0-9]*"), key=lambda p: int(p.name[4:])):
        cpus = parse_cpulist((entry / "cpulist").read_text())
        memory = 0
        meminfo = entry / "meminfo"
        if meminfo.exists():
            found = re.search(r"MemTotal:\s+(\d+)\s*kB", meminfo.read_text())
            memory = int(found.group(1)) * 1024 if found else 0
        if cpus:
            zones.append(NumaZoneInfo(id=int(entry.name[4:]), cpus=cpus, memory=memory))
    return zones


def numa_usage(zones: list[NumaZoneInfo], per_cpu: list[float]) -> list[NumaUsage]:
    """Each zone's mean CPU percentage from ``psutil.cpu_percent(percpu=True)`` (indexed by
    CPU id); CPUs a zone names that the machine does not measure are left out."""
    usage = []
    for zone in zones:
        known = [per_cpu[c] for c in zone.cpus if 0 <= c < len(per_cpu)]
        mean = round(sum(known) / len(known), 1) if known else None
        usage.append(NumaUsage(id=zone.id, cpu_percent=mean))
    return usage


def read_temperatures() -> dict[str, float]:
    """Sensor temperatures in °C as ``chip/label``; empty where psutil has no sensors."""
    sensors = getattr(psutil, "sensors_temperatures", None)
    if sensors is None:
        return {}
    try:
        found = sensors()
    except Exception:  # unreadable hwmon files: report none rather than fail the heartbeat
        return {}
    temperatures: dict[str, float] = {}
    for chip, entries in found.items():
        for i, entry in enumerate(entries):
            key = f"{chip}/{entry.label or i}"
            if key in temperatures:
                key = f"{key}#{i}"
            temperatures[key] = float(entry.current)
    return temperatures


class Inventory:
    def __init__(
        self,
        probe: GpuProbe,
        sysfs_root: Path = Path("/sys"),
        cores: int | None = None,
        memory: int | None = None,
    ) -> None:
        self.probe = probe
        self.sysfs_root = sysfs_root
        self.cores = cores
        self.memory = memory
        self._zones: list[NumaZoneInfo] | None = None
        psutil.cpu_percent(None)  # prime the counters so the first sample is meaningful
        psutil.cpu_percent(None, percpu=True)

    def read(self) -> NodeInventory:
        machine_cores = len(os.sched_getaffinity(0))
        cores = self.cores or machine_cores
        numa = read_numa(self.sysfs_root)
        if not numa:
            numa = [
                NumaZoneInfo(
                    id=0, cpus=list(range(machine_cores)), memory=psutil.virtual_memory().total
                )
            ]
        self._zones = numa
        return NodeInventory(
            cores=cores,
            memory=self.memory or psutil.virtual_memory().total,
            numa=numa,
            gpus=self.probe.read(),
        )

    def sample(self) -> NodeUsageSample:
        vm = psutil.virtual_memory()
        zones = self._zones if self._zones is not None else self.read().numa
        return NodeUsageSample(
            at=datetime.now(UTC),
            cpu_percent=psutil.cpu_percent(None),
            memory_used=vm.total - vm.available,
            memory_percent=vm.percent,
            memory_total=vm.total,
            load=list(os.getloadavg()),
            gpus=self.probe.read(),
            numa=numa_usage(zones, psutil.cpu_percent(None, percpu=True)),
            temperatures=read_temperatures(),
        )
