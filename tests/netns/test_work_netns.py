"""Work across machines: tasks on each node, logs through the host (no shared
directory), an environment synced over HTTP, a VPS reached with stock ``ssh -J``,
``kawa forward`` and ``kawa connect`` from a client machine, and a network partition."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import docker
import pytest

from kawa.client import KawaClient
from kawa.protocol.tasks import TaskAction, TaskSpec, TaskView
from tests.conftest import BASE_IMAGE
from tests.integration.cluster import KAWA
from tests.netns.conftest import (
    CLIENT,
    HOST,
    NODE_TIMEOUT,
    R1,
    R2,
    SSH_PORT,
    NetCluster,
    eventually,
)


def submit(net: NetCluster, **spec: object) -> list[str]:
    made = net.api(lambda c: c.submit(TaskSpec.model_validate(spec)))
    return [t.id for t in made.tasks]


def wait(net: NetCluster, ids: list[str], timeout: float = 120) -> list[TaskView]:
    return net.api(lambda c: c.wait(ids, timeout=timeout))


def output(net: NetCluster, task_id: str) -> str:
    return net.api(lambda c: b"".join(c.logs(task_id)).decode())


def view(net: NetCluster, task_id: str) -> TaskView:
    return net.api(lambda c: c.task(task_id))


def test_tasks_on_each_node_and_a_batch_with_logs_through_the_host(net: NetCluster) -> None:
    ids = submit(net, command=["sh", "-c", "echo on $KAWA_NODE; echo err >&2"], targets=[R1])
    ids += submit(net, command=["echo", "second"], targets=[R2])
    batch = submit(net, command=["sh", "-c", "echo batch"], targets=[R1, R2])
    done = wait(net, ids + batch)
    assert [t.state for t in done] == ["completed"] * 4, [t.error for t in done]
    assert [t.node for t in done] == [R1, R2, R1, R2]
    assert output(net, ids[0]) == f"on {R1}\n" and output(net, ids[1]) == "second\n"
    assert output(net, batch[0]) == output(net, batch[1]) == "batch\n"
    stderr = net.api(lambda c: b"".join(c.logs(ids[0], stream="stderr")).decode())
    assert stderr == "err\n"


def journal_loads(net: NetCluster, node: str, image: str) -> tuple[int, str] | None:
    path = net.runners[node] / "journal.sqlite"
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        found = db.execute(
            "SELECT loads, source FROM environments WHERE image = ?", (image,)
        ).fetchone()
    return (int(found[0]), str(found[1])) if found else None


def test_an_environment_is_synced_over_http_to_a_node(net: NetCluster) -> None:
    name = f"netns{net.cluster_id[:6]}"
    made = net.cli("container", "create", name, "--from", BASE_IMAGE)
    assert made.returncode == 0, made.stderr
    shell = net.cli("container", "shell", name, input="echo synced > /opt/marker\n")
    assert shell.returncode == 0, shell.stderr
    packaged = net.cli("container", "package", name, "--json")
    assert packaged.returncode == 0, packaged.stderr
    image = net.api(lambda c: next(v for v in c.tarballs(name) if v.newest)).image
    with contextlib.closing(docker.from_env(timeout=120)) as client:
        client.api.remove_image(image)  # the one daemon forgets it: r2 must fetch it
    try:
        [task] = submit(net, command=["cat", "/opt/marker"], container=name, targets=[R2])
        [final] = wait(net, [task], timeout=300)
        assert final.state == "completed", final.error
        assert output(net, task) == "synced\n"
        assert journal_loads(net, R2, image) == (1, "http")
    finally:
        net.cli("container", "delete", name)
        with (
            contextlib.closing(docker.from_env(timeout=120)) as client,
            contextlib.suppress(docker.errors.APIError),
        ):
            client.api.remove_image(image, force=True)


def keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True, timeout=30
    )


@pytest.fixture(scope="module")
def vps(net: NetCluster) -> tuple[str, Path]:
    """A VPS on r1, with the key that reaches it."""
    if shutil.which("ssh") is None:
        pytest.fail("the OpenSSH client is missing")
    key = net.root / "vps-key"
    keygen(key)
    done = net.cli("vps", "create", "--target", R1, "--public-key-file", f"{key}.pub", "--json")
    assert done.returncode == 0, done.stderr
    vps_id = str(json.loads(done.stdout)["id"])
    eventually(lambda: view(net, vps_id).state == "running", 120, "the VPS to run")
    return vps_id, key


def ssh_config(net: NetCluster, key: Path) -> Path:
    path = net.root / "ssh-config"
    path.write_text(
        f"Host gateway\n  HostName {net.lab.machines[HOST].address}\n  Port {SSH_PORT}\n"
        f"  User kawa\nHost *\n  IdentityFile {key}\n  IdentitiesOnly yes\n"
        "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
        "  BatchMode yes\n  LogLevel ERROR\n  ConnectTimeout 20\n"
    )
    return path


def test_a_vps_on_a_runner_is_reached_with_ssh_jump_from_a_third_machine(
    net: NetCluster, vps: tuple[str, Path]
) -> None:
    vps_id, key = vps
    argv = ["ssh", "-F", str(ssh_config(net, key)), "-J", "gateway", f"root@{vps_id}"]

    def jump(*command: str) -> subprocess.CompletedProcess[str]:
        return net.lab.run(CLIENT, [*argv, *command], net.env(), timeout=60)

    tries: list[str] = []

    def reached() -> bool:
        done = jump("true")
        tries.append(done.stderr.strip())
        return done.returncode == 0

    try:
        eventually(reached, 60, "ssh -J through the gateway")
    except AssertionError:
        raise AssertionError(f"ssh -J failed: {tries[-3:]}") from None
    done = jump("cat", "/etc/hostname")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()


def test_forward_and_connect_across_machines(net: NetCluster, vps: tuple[str, Path]) -> None:
    vps_id, _ = vps
    port = 40022
    env = net.env(KAWA_CLIENT_URL=net.url, KAWA_CLIENT_TOKEN=net.token, HOME=str(net.root))
    log = net.root / "forward.log"
    proc = net.lab.spawn(
        CLIENT, [*KAWA, "forward", vps_id, "22", "--local-port", str(port)], env, log
    )

    def banner() -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            return s.recv(64)

    try:
        got = eventually(lambda: net.lab.call(CLIENT, banner), 60, "sshd's banner through forward")
        assert got.startswith(b"SSH-2.0-"), got
    finally:
        net.lab.stop(proc)
    done = net.cli("connect", vps_id, "--command", "echo connected; exit 3")
    assert done.returncode == 3 and "connected" in done.stdout, done.stdout + done.stderr


def containers_of(net: NetCluster, task_id: str) -> list[str]:
    with contextlib.closing(docker.from_env()) as client:
        found = client.containers.list(
            all=True, filters={"label": [f"kawa.cluster={net.cluster_id}", f"kawa.task={task_id}"]}
        )
        return [c.id for c in found]


def test_a_partition_loses_tasks_then_they_run_again_and_the_other_node_works(
    net: NetCluster,
) -> None:
    [cut] = submit(net, command=["sleep", "600"], targets=[R1])
    [kept] = submit(net, command=["sleep", "600"], targets=[R2])
    eventually(lambda: all(view(net, t).state == "running" for t in (cut, kept)), 60, "running")
    net.lab.link(R1, up=False)
    try:
        started = time.monotonic()
        eventually(lambda: view(net, cut).state == "lost", 4 * NODE_TIMEOUT + 10, "lost")
        assert net.status(R1) == "offline"
        assert view(net, kept).state == "running"
        [fresh] = submit(net, command=["echo", "during"], targets=[R2])
        [done] = wait(net, [fresh])
        assert done.state == "completed" and output(net, fresh) == "during\n"
        # the link stays down past the node timeout, as a real partition would
        while time.monotonic() - started < 2 * NODE_TIMEOUT:
            time.sleep(0.2)
    finally:
        net.lab.link(R1, up=True)
    eventually(lambda: view(net, cut).state == "running", 60, "the lost task running again")
    assert net.status(R1) == "online"
    assert len(containers_of(net, cut)) == 1  # the same container: nothing started twice
    assert view(net, kept).state == "running"
    net.api(lambda c: [c.act(t, TaskAction.KILL) for t in (cut, kept)])
    wait(net, [cut, kept])


def test_the_client_sees_the_host_only_at_its_address(net: NetCluster) -> None:
    """The lab is real: from the client machine the host's loopback is not the host."""

    def loopback() -> bool:
        try:
            with KawaClient(f"http://127.0.0.1:{8420}", net.token, timeout=3) as c:
                c.health()
        except Exception:
            return False
        return True

    assert not net.lab.call(CLIENT, loopback)
