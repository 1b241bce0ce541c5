"""A runner killed outright (SIGKILL) with command tasks and a VPS running, and started
again: what still runs is adopted and ``running`` again, what ended meanwhile reports
its real exit code, the VPS answers ssh through the gateway again, and no container is
left behind or started twice."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from kawa.protocol.tasks import TaskSpec
from tests.integration.cluster import Cluster, eventually, free_port, when
from tests.integration.test_vps import created_id, kawa, keygen
from tests.reliability.conftest import MakeCluster

_NO_SSH = shutil.which("ssh") is None or shutil.which("ssh-keygen") is None
if _NO_SSH and os.environ.get("CI") == "true":  # CI must exercise SSH: fail, never skip
    raise RuntimeError("the OpenSSH client is missing (scripts/bootstrap.sh installs it)")
pytestmark = pytest.mark.skipif(_NO_SSH, reason="the OpenSSH client is not installed")

RETURN_TARGET = 2.0
"""Seconds within which a returning runner's tasks are ``running`` again."""


def gated(name: str, code: int) -> list[str]:
    """A task that leaves one marker per run, waits for /shared/<name>, then exits
    with ``code``."""
    return [
        "sh",
        "-c",
        "mktemp /shared/markers/$KAWA_TASK_ID.XXXXXX >/dev/null; echo start; "
        f"while [ ! -e /shared/{name} ]; do sleep 0.1; done; echo end; exit {code}",
    ]


def state(cluster: Cluster, task_id: str) -> str:
    with cluster.client() as c:
        return c.task(task_id).state.value


def wait_state(cluster: Cluster, task_id: str, wanted: str, timeout: float) -> None:
    eventually(lambda: state(cluster, task_id) == wanted, timeout, f"{task_id} {wanted}")


def ssh_config(path: Path, port: int, key: Path) -> Path:
    path.write_text(
        f"Host gateway\n  HostName 127.0.0.1\n  Port {port}\n  User kawa\n"
        f"Host *\n  IdentityFile {key}\n  IdentitiesOnly yes\n"
        "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
        "  BatchMode yes\n  LogLevel ERROR\n  ConnectTimeout 20\n"
    )
    return path


@pytest.mark.timeout(300)
def test_runner_killed_and_restarted(make_cluster: MakeCluster, tmp_path: Path) -> None:
    gateway = free_port()
    # The default heartbeat interval: with it, a runner that waited one interval before
    # its first heartbeat would miss the return target.
    cluster = make_cluster(heartbeat_interval=2.0, node_timeout=5.0, gateway_port=gateway)
    shared = tmp_path / "shared"
    cluster.add_runner("solo", cores=4, shared_dir=shared)
    gates = shared / "shared_data"
    (gates / "markers").mkdir(parents=True)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    key = tmp_path / "key"
    keygen(key)
    config = ssh_config(tmp_path / "ssh_config", gateway, key)

    def ssh_ok(vps: str) -> bool:
        done = subprocess.run(
            ["ssh", "-F", str(config), "-J", "gateway", f"root@{vps}", "echo", "up"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        return done.returncode == 0 and done.stdout.strip() == "up"

    vps_id = created_id(kawa(cluster, home, "vps", "create", "--public-key-file", f"{key}.pub"))
    with cluster.client() as c:
        [long] = c.submit(TaskSpec(command=gated("release-long", 5))).tasks
        [short] = c.submit(TaskSpec(command=gated("release-short", 3))).tasks
    for task_id in (vps_id, long.id, short.id):
        wait_state(cluster, task_id, "running", 60)
    eventually(lambda: ssh_ok(vps_id), 60, "ssh to the VPS through the gateway")

    cluster.stop_runner("solo")  # SIGKILL
    (gates / "release-short").touch()  # it ends while its runner is down
    eventually(
        lambda: [c.status for c in cluster.containers(task=short.id)] == ["exited"],
        30,
        "the short task's container to exit",
    )
    for task_id in (vps_id, long.id, short.id):
        wait_state(cluster, task_id, "lost", 30)

    cluster.start_runner("solo", wait=False)
    eventually(lambda: cluster.node_status("solo") == "online", 60, "runner registered")
    back = time.monotonic()
    wait_state(cluster, long.id, "running", 30)
    wait_state(cluster, vps_id, "running", 30)
    took = time.monotonic() - back
    # The target itself: measured from the moment this test sees the node online (so
    # up to one 50 ms poll after it registered), the adopted tasks are running again.
    assert took <= RETURN_TARGET, f"tasks running again {took:.2f}s after the runner's return"

    with cluster.client() as c:
        ended = eventually(
            lambda: when(v := c.task(short.id), v.state.value == "failed"), 30, "short settled"
        )
        assert ended.exit_code == 3
        assert [h.target for h in ended.history][-2:] == ["lost", "failed"]
        assert b"".join(c.logs(short.id)) == b"start\nend\n"
    eventually(lambda: ssh_ok(vps_id), 60, "ssh to the VPS again after the restart")

    (gates / "release-long").touch()
    with cluster.client() as c:
        done = eventually(
            lambda: when(v := c.task(long.id), v.state.value == "failed"), 30, "long settled"
        )
        assert done.exit_code == 5
        assert [h.target for h in done.history][-3:] == ["lost", "running", "failed"]
        assert b"".join(c.logs(long.id)) == b"start\nend\n"
        assert c.task(vps_id).state.value == "running"

    runs = Counter(p.name.split(".", 1)[0] for p in (gates / "markers").iterdir())
    assert runs == {long.id: 1, short.id: 1}
    # No orphan: once the command tasks are settled, the VPS's container is the only one.
    eventually(
        lambda: [c.labels["kawa.task"] for c in cluster.containers()] == [vps_id],
        30,
        "only the VPS container left",
    )
    print(f"\nrunner restart: tasks running again {took:.2f}s after it registered")
