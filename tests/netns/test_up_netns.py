"""``kawa up --bind 0.0.0.0`` on one machine prints the line that adds another, and that
line, run as printed on a second machine, adds it."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from kawa.client import KawaClient
from tests.integration.cluster import KAWA
from tests.netns.conftest import eventually
from tests.netns.lab import Lab

UP, NODE = "up", "n2"


@pytest.fixture
def two_machines(lab_ready: None, docker_available: None, tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(f"{os.getpid() % 100000}-up")
    try:
        lab.start()
        lab.add(UP, 30)
        lab.add(NODE, 31)
        yield lab
    finally:
        lab.close()


def user_env(root: Path, name: str) -> dict[str, str]:
    home = root / f"home-{name}"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAWA_")}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        KAWA_CONFIG=str(home / "kawa.toml"),
    )
    return env


def test_the_join_line_of_kawa_up_adds_a_machine(two_machines: Lab, tmp_path: Path) -> None:
    lab = two_machines
    up_log = tmp_path / "up.log"
    argv = [*KAWA, "up", "--bind", "0.0.0.0", "--name", "first", "--data-dir", str(tmp_path / "d")]
    lab.spawn(UP, argv, user_env(tmp_path, UP), up_log)
    found = eventually(
        lambda: re.search(r"^\s+(kawa join \S+ \S+)$", up_log.read_text(errors="replace"), re.M),
        90,
        "kawa up's join line",
    )
    line = shlex.split(found.group(1))
    address = lab.machines[UP].address
    assert line[2] == f"http://{address}:8420"  # the machine's own address, found by route
    token = re.search(r"admin token:\s+(\S+)", up_log.read_text()).group(1)  # type: ignore[union-attr]
    data = tmp_path / "n2-data"
    lab.spawn(
        NODE,
        [*KAWA, *line[1:], "--name", NODE, "--data-dir", str(data)],
        user_env(tmp_path, NODE),
        tmp_path / "join.log",
    )

    def nodes() -> dict[str, str]:
        with KawaClient(line[2], token, timeout=10) as c:
            return {n.name: n.url for n in c.nodes()}

    def joined() -> dict[str, str] | None:
        found = lab.call(UP, nodes)
        return found if NODE in found else None

    seen = eventually(joined, 60, "n2 to join")
    assert seen[NODE] == f"http://{lab.machines[NODE].address}:8421"
    assert "first" in seen
