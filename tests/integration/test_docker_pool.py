"""The executor's Docker client: short calls share one pool, long ones keep their own."""

from __future__ import annotations

from collections.abc import Iterator

import docker
import pytest

from kawa.runner.docker_pool import share_connections
from tests.conftest import BASE_IMAGE

LABEL = {"kawa.test": "docker-pool"}


@pytest.fixture
def client(docker_available: None) -> Iterator[docker.DockerClient]:
    c = docker.from_env(timeout=60)
    share_connections(c)
    yield c
    for leftover in c.containers.list(all=True, filters={"label": "kawa.test=docker-pool"}):
        leftover.remove(force=True)
    c.close()


def test_short_calls_about_new_containers_share_one_pool(client: docker.DockerClient) -> None:
    api = client.api
    for _ in range(3):
        cid = api.create_container(BASE_IMAGE, ["true"], labels=LABEL)["Id"]
        api.start(cid)
        assert api.wait(cid)["StatusCode"] == 0
        api.inspect_container(cid)
        api.remove_container(cid, force=True)
    keys = list(api._custom_adapter.pools.keys())
    shared = [k for k in keys if not k.endswith("/wait")]
    assert len(shared) == 1, keys  # create, start, inspect, remove: one pool
    assert len(keys) == 4, keys  # each wait held a connection of its own


def test_sharing_twice_changes_nothing(client: docker.DockerClient) -> None:
    adapter = client.api._custom_adapter
    share_connections(client)
    assert client.api._custom_adapter is adapter
    assert client.api.trust_env is False
