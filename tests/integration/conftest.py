from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from kawa.store.database import make_engine, migrate, session_factory, sqlite_url
from tests.conftest import BASE_IMAGE
from tests.integration.cluster import Cluster


@pytest.fixture(scope="module")
def cluster(docker_available: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A host and two runners (node1 with 2 cores, node2 with 2 cores), shared by a module."""
    c = Cluster(Path(tmp_path_factory.mktemp("cluster")), BASE_IMAGE)
    try:
        c.start_host()
        c.add_runner("node1", cores=2)
        c.add_runner("node2", cores=2)
        yield c
    finally:
        c.close()


@pytest.fixture
def fresh_cluster(docker_available: None, tmp_path: Path) -> Iterator[Cluster]:
    """A cluster of its own (host only; add runners in the test)."""
    c = Cluster(tmp_path, BASE_IMAGE)
    try:
        c.start_host()
        yield c
    finally:
        c.close()


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """A migrated SQLite database of the test's own (no host)."""
    engine = make_engine(sqlite_url(tmp_path / "kawa.db"))
    migrate(engine)
    yield session_factory(engine)
    engine.dispose()
