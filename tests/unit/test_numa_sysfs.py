"""NUMA topology from recorded sysfs trees (tests/data/sysfs/) and per-zone usage."""

from __future__ import annotations

from pathlib import Path

import pytest

from kawa.protocol.nodes import NumaZoneInfo
from kawa.runner.gpus import NoGpus
from kawa.runner.inventory import Inventory, numa_usage, parse_cpulist, read_numa

SYSFS = Path(__file__).parents[1] / "data" / "sysfs"
KIB = 1024


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("0-3,8-11\n", [0, 1, 2, 3, 8, 9, 10, 11]),
        ("4-7,12-15", [4, 5, 6, 7, 12, 13, 14, 15]),
        ("0", [0]),
        ("0,2,4-5", [0, 2, 4, 5]),
        ("63-64", [63, 64]),
        ("", []),
        ("\n", []),
    ],
)
def test_parse_cpulist(text: str, cpus: list[int]) -> None:
    assert parse_cpulist(text) == cpus


def test_two_socket_box_with_interleaved_smt_siblings() -> None:
    zones = read_numa(SYSFS / "two-socket")
    assert zones == [
        NumaZoneInfo(id=0, cpus=[0, 1, 2, 3, 8, 9, 10, 11], memory=65842044 * KIB),
        NumaZoneInfo(id=1, cpus=[4, 5, 6, 7, 12, 13, 14, 15], memory=66028392 * KIB),
    ]


def test_four_node_box_leaves_out_its_memory_only_node() -> None:
    zones = read_numa(SYSFS / "four-node")
    assert [z.id for z in zones] == [0, 1, 2, 3]  # node4 has memory but no cpus
    assert [z.cpus for z in zones] == [list(range(16 * i, 16 * i + 16)) for i in range(4)]
    assert {z.memory for z in zones} == {32 * 1024 * 1024 * KIB}


def test_single_node_box() -> None:
    assert read_numa(SYSFS / "single-node") == [
        NumaZoneInfo(id=0, cpus=[0, 1, 2, 3], memory=16318480 * KIB)
    ]


def test_zones_sort_by_number_and_missing_meminfo_means_unknown_memory(tmp_path: Path) -> None:
    base = tmp_path / "devices" / "system" / "node"
    for node, cpus in (("node10", "20-21"), ("node2", "4-5"), ("node0", "0-1")):
        (base / node).mkdir(parents=True)
        (base / node / "cpulist").write_text(cpus + "\n")
    (base / "node0" / "meminfo").write_text("Node 0 MemTotal:       1024 kB\n")
    zones = read_numa(tmp_path)
    assert [(z.id, z.cpus, z.memory) for z in zones] == [
        (0, [0, 1], 1024 * KIB),
        (2, [4, 5], 0),
        (10, [20, 21], 0),
    ]


def test_no_node_directory_means_no_zones(tmp_path: Path) -> None:
    assert read_numa(tmp_path) == []


def test_inventory_reports_recorded_topology_and_samples_each_zone() -> None:
    inv = Inventory(NoGpus(), SYSFS / "two-zones-cpu0-cpu1")
    assert [(z.id, z.cpus) for z in inv.read().numa] == [(0, [0]), (1, [1])]
    sample = inv.sample()
    assert [z.id for z in sample.numa] == [0, 1]
    for zone in sample.numa:
        assert zone.cpu_percent is not None and 0.0 <= zone.cpu_percent <= 100.0
    assert all(isinstance(v, float) for v in sample.temperatures.values())


def test_inventory_without_numa_in_sysfs_offers_one_zone_of_all_cpus(tmp_path: Path) -> None:
    inv = Inventory(NoGpus(), tmp_path, cores=1, memory=10**9)
    got = inv.read()
    assert got.cores == 1 and got.memory == 10**9
    assert len(got.numa) == 1 and got.numa[0].id == 0 and got.numa[0].cpus
    assert [z.id for z in inv.sample().numa] == [0]


def test_numa_usage_averages_each_zones_cpus() -> None:
    zones = [
        NumaZoneInfo(id=0, cpus=[0, 1], memory=0),
        NumaZoneInfo(id=1, cpus=[2, 3], memory=0),
        NumaZoneInfo(id=2, cpus=[7, 99], memory=0),  # 7 is measured, 99 is not
        NumaZoneInfo(id=3, cpus=[64], memory=0),  # recorded for a machine bigger than this
    ]
    per_cpu = [10.0, 30.0, 100.0, 0.0, 0.0, 0.0, 0.0, 42.0]
    got = {z.id: z.cpu_percent for z in numa_usage(zones, per_cpu)}
    assert got == {0: 20.0, 1: 50.0, 2: 42.0, 3: None}
