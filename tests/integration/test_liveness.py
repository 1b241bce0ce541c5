"""The host's liveness check on a real SQLite database, in this process: a check that
finds every node alive writes nothing; a silent node goes offline, its tasks are lost
and its new view is published with what it still holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import event

from kawa.host.app import Host, prepare_database
from kawa.host.auth import Principal
from kawa.protocol.nodes import NodeInventory, NodeRegistration, NodeStatus
from kawa.protocol.tasks import TaskSpec
from kawa.settings import HostConfig
from kawa.store.models import Node

ADMIN = Principal("admin", "admin")
TIMEOUT = 5.0


def test_a_check_writes_nothing_until_a_node_falls_silent(tmp_path: Path) -> None:
    config = HostConfig(data_dir=tmp_path / "host", cluster_secret="s", node_timeout=TIMEOUT)
    host = Host(config, prepare_database(config))
    inventory = NodeInventory(cores=4, memory=8 << 30)
    for name in ("n1", "n2"):
        url = f"http://127.0.0.1:9/{name}"
        host.nodes.register(NodeRegistration(name=name, url=url, inventory=inventory))
    host.tasks.submit(TaskSpec(command=["true"], image="img", targets=["n1"]), ADMIN)
    assert len(host.scheduler.schedule_once()) == 1  # assigning on n1 (never sent)
    host.nodes._started = datetime.now(UTC) - timedelta(seconds=10 * TIMEOUT)
    commits: list[object] = []
    event.listen(host.sessions.kw["bind"], "commit", commits.append)

    assert host.nodes.mark_offline() == []
    assert commits == []
    with host.sessions.begin() as s:  # n1 last heard from long ago
        node = s.get(Node, "n1")
        assert node is not None
        node.last_heartbeat = datetime.now(UTC) - timedelta(seconds=2 * TIMEOUT)
    commits.clear()
    with host.bus.subscribe() as sub:
        assert host.nodes.mark_offline() == ["n1"]
        assert len(commits) == 1
        events = []
        while not sub.queue.empty():
            events.append(sub.queue.get_nowait())
    view = host.nodes.get("n1")
    assert view.status is NodeStatus.OFFLINE
    assert view.held.cores == 1  # a lost task still holds its core
    assert host.nodes.get("n2").status is NodeStatus.ONLINE
    nodes = [e.node for e in events if e is not None and e.node is not None]
    assert [(n.name, n.status, n.held.cores) for n in nodes] == [("n1", NodeStatus.OFFLINE, 1)]
    tasks = [e.task for e in events if e is not None and e.task is not None]
    assert [t.state.value for t in tasks] == ["lost"]
