"""What the SSH gateway asks the host's task service (``vps_has_key``, ``vps_access``),
on a real database: no Docker, no runner (a node is registered, nothing is scheduled: the VPSs
stay pending, with no node)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from kawa.core.task_states import TaskKind, TaskState
from kawa.host.app import Host, prepare_database, register_environment
from kawa.host.auth import Principal
from kawa.protocol.nodes import NodeInventory, NodeRegistration
from kawa.protocol.tasks import TaskSpec
from kawa.settings import HostConfig

ADMIN = Principal("admin", "admin")
GIB = 1 << 30


def _key(fill: bytes) -> tuple[str, str]:
    blob = b"\x00\x00\x00\x0bssh-ed25519" + b"\x00\x00\x00\x20" + fill * 32
    return "ssh-ed25519", base64.b64encode(blob).decode()


@pytest.fixture
def host(tmp_path: Path) -> Host:
    config = HostConfig(data_dir=tmp_path / "host", cluster_secret="s")
    sessions = prepare_database(config)
    register_environment(sessions, config.default_container, "kawa/base:bookworm")
    host = Host(config, sessions)
    inventory = NodeInventory(cores=4, memory=8 * GIB)  # never asked: nothing is scheduled
    host.nodes.register(NodeRegistration(name="n1", url="http://127.0.0.1:9", inventory=inventory))
    return host


def _vps(host: Host, key: tuple[str, str], name: str) -> str:
    spec = TaskSpec(kind=TaskKind.VPS, ssh_key=f"{key[0]} {key[1]} me@laptop", name=name)
    [task] = host.tasks.submit(spec, ADMIN).tasks
    return task.id


def test_a_vps_is_found_by_id_by_kawa_id_and_by_its_newest_name(host: Host) -> None:
    mine, other = _key(b"a"), _key(b"b")
    first = _vps(host, mine, "web")
    newest = _vps(host, other, "web")
    [command] = host.tasks.submit(TaskSpec(command=["true"], name="cmd"), ADMIN).tasks

    found = host.tasks.vps_access(first)
    assert found is not None
    assert (found.task_id, found.state, found.node_url) == (first, TaskState.PENDING, None)
    assert found.ssh_key is not None and found.ssh_key.split()[:2] == list(mine)
    by_kawa_id = host.tasks.vps_access(f" kawa-{first} ")
    assert by_kawa_id is not None and by_kawa_id.task_id == first
    by_name = host.tasks.vps_access("web")
    assert by_name is not None and by_name.task_id == newest
    assert host.tasks.vps_access(command.id) is None  # a command task is no VPS
    assert host.tasks.vps_access("cmd") is None
    assert host.tasks.vps_access("nope") is None
    assert host.tasks.vps_access("9" * 30) is None  # an id too large: no VPS, no error


def test_a_key_is_known_only_as_a_whole(host: Host) -> None:
    mine = _key(b"a")
    _vps(host, mine, "web")
    assert host.tasks.vps_has_key(*mine)
    assert not host.tasks.vps_has_key(*_key(b"b"))
    kind, data = mine
    assert not host.tasks.vps_has_key(kind, data[:-4])  # a prefix of the key is not the key
    assert not host.tasks.vps_has_key("ssh-rsa", data)
