"""When a runner must enter a container's network namespace to reach its ports."""

from __future__ import annotations

import os
import socket

import pytest

from kawa.runner.container_net import netns_to_enter, socket_in_netns

ROOT = os.geteuid() == 0


def inspected(network: str = "bridge", gateway: str = "", pid: int | None = None) -> dict:  # type: ignore[type-arg]
    return {
        "State": {"Pid": os.getpid() if pid is None else pid},
        "HostConfig": {"NetworkMode": network},
        "NetworkSettings": {"Gateway": "", "Networks": {network: {"Gateway": gateway}}},
    }


def test_a_bridge_whose_gateway_is_local_is_reached_directly() -> None:
    assert netns_to_enter(inspected(gateway="127.0.0.1")) is None


def test_a_bridge_whose_gateway_is_elsewhere_is_entered() -> None:
    found = netns_to_enter(inspected(gateway="192.0.2.1"))
    assert found == (os.getpid() if ROOT else None)


def test_a_host_network_container_in_this_namespace_is_reached_directly() -> None:
    assert netns_to_enter(inspected(network="host")) is None


def test_a_container_not_running_is_never_entered() -> None:
    assert netns_to_enter(inspected(gateway="192.0.2.1", pid=0)) is None


def test_a_socket_made_in_this_process_namespace_connects_here() -> None:
    if not ROOT:  # setns needs root: refused, never silently made elsewhere
        with pytest.raises(OSError):
            socket_in_netns(os.getpid(), socket.AF_INET)
        return
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        sock = socket_in_netns(os.getpid(), socket.AF_INET)
        with sock:
            sock.setblocking(True)
            sock.connect(server.getsockname())
            accepted, _ = server.accept()
            accepted.close()
