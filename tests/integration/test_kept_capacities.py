"""Admission reads the nodes' capacities once and again only after the nodes table was
written: a host in this process on a real SQLite database."""

from __future__ import annotations

from pathlib import Path

import pytest

from kawa.host import snapshots
from kawa.host.app import Host, prepare_database
from kawa.host.auth import Principal
from kawa.host.errors import BadRequest
from kawa.protocol.nodes import NodeInventory, NodeRegistration
from kawa.protocol.tasks import TaskSpec
from kawa.settings import HostConfig

ALICE = Principal("alice", "user")


def register(host: Host, name: str, cores: int) -> None:
    inventory = NodeInventory(cores=cores, memory=8 << 30)
    url = f"http://127.0.0.1:9/{name}"
    host.nodes.register(NodeRegistration(name=name, url=url, inventory=inventory))


def test_a_node_registered_since_the_last_read_is_seen_by_the_next_submission(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshots, "MAX_AGE", 600.0)  # only a write makes it read again
    config = HostConfig(data_dir=tmp_path / "host", cluster_secret="s")
    host = Host(config, prepare_database(config))
    register(host, "n1", 4)
    wide = TaskSpec(command=["true"], cores=6, image="img")
    with pytest.raises(BadRequest, match="6 cores"):
        host.tasks.submit(wide, ALICE)
    with host.sessions() as s:  # nothing written to nodes since: the same answer
        first = host.tasks.capacities.get(s)
        assert host.tasks.capacities.get(s) is first
    host.tasks.submit(TaskSpec(command=["true"], image="img"), ALICE)  # tasks only
    with host.sessions() as s:
        assert host.tasks.capacities.get(s) is first
    register(host, "n2", 8)  # the nodes table written: read again
    answer = host.tasks.submit(wide, ALICE)
    assert answer.tasks[0].cores == 6
    with host.sessions() as s:
        assert sorted(host.tasks.capacities.get(s)) == ["n1", "n2"]


def test_an_admission_verdict_is_kept_with_the_capacities_it_was_made_on(
    tmp_path: Path,
) -> None:
    config = HostConfig(data_dir=tmp_path / "host", cluster_secret="s")
    host = Host(config, prepare_database(config))
    register(host, "n1", 4)
    for _ in range(2):  # the second refusal is the kept verdict, with the same words
        with pytest.raises(BadRequest, match="6 cores"):
            host.tasks.submit(TaskSpec(command=["true"], cores=6, image="img"), ALICE)
    register(host, "n1", 8)  # the same node, grown: verdicts made on 4 cores are dropped
    answer = host.tasks.submit(TaskSpec(command=["true"], cores=6, image="img"), ALICE)
    assert answer.tasks[0].cores == 6


def test_kept_capacities_are_read_again_once_too_old(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = HostConfig(data_dir=tmp_path / "host", cluster_secret="s")
    host = Host(config, prepare_database(config))
    register(host, "n1", 4)
    monkeypatch.setattr(snapshots, "MAX_AGE", 0.0)  # what another host wrote shows at once
    with host.sessions() as s:
        first = host.tasks.capacities.get(s)
        assert host.tasks.capacities.get(s) is not first
