from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BASE_IMAGE
from tests.integration.cluster import Cluster

MakeCluster = Callable[..., Cluster]


@pytest.fixture
def make_cluster(docker_available: None, tmp_path: Path) -> Iterator[MakeCluster]:
    """Start a host of its own (``Cluster`` fields as keywords; add runners in the test).
    Everything is stopped and every container of the cluster removed afterwards,
    whatever the test left behind (a frozen runner is thawed first)."""
    made: list[Cluster] = []

    def make(**fields: Any) -> Cluster:
        root = tmp_path / f"cluster{len(made)}"
        root.mkdir()
        fields.setdefault("gateway_port", 0)  # no SSH gateway unless the test asks for one
        c = Cluster(root, BASE_IMAGE, **fields)
        made.append(c)
        c.start_host()
        return c

    try:
        yield make
    finally:
        for c in made:
            c.close()
