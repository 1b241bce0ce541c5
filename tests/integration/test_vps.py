"""VPS tasks with real containers, a real sshd and the stock OpenSSH client.

``kawa ssh`` runs ``ssh`` and carries its connection itself (or, with options that make
ssh outlive it, through ``ProxyCommand=kawa proxy ID 22``): one forward stream through
the host and the runner to the container's sshd (docs/vps.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import docker
import pytest

from kawa.cli.ssh import proxy_command
from kawa.client import KawaClient
from kawa.client.errors import KawaError
from kawa.host.app import prepare_database
from kawa.host.auth import Authenticator
from kawa.protocol.tasks import TaskAction, TaskSpec
from kawa.settings import HostConfig
from tests.conftest import BASE_IMAGE
from tests.integration.cluster import KAWA, Cluster, eventually, free_port

_NO_SSH = shutil.which("ssh") is None or shutil.which("ssh-keygen") is None
if _NO_SSH and os.environ.get("CI") == "true":  # CI must exercise SSH: fail, never skip
    raise RuntimeError("the OpenSSH client is missing (scripts/bootstrap.sh installs it)")
pytestmark = pytest.mark.skipif(_NO_SSH, reason="the OpenSSH client is not installed")
SSH_OPTS = [
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "BatchMode=yes",
    "-o", "LogLevel=ERROR",
]  # fmt: skip


def keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_name(path.name + ".pub").read_text().strip()


def kawa(
    cluster: Cluster, home: Path, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The CLI as a user with ``home`` as their home directory."""
    env = cluster._env(
        KAWA_CLIENT_URL=cluster.url, KAWA_CLIENT_TOKEN=cluster.token, COLUMNS="200", HOME=str(home)
    )
    return subprocess.run(
        [*KAWA, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def created_id(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout.split("created VPS ", 1)[1].split()[0]


def state(cluster: Cluster, vps_id: str) -> str:
    with cluster.client() as c:
        return c.task(vps_id).state.value


def is_running(cluster: Cluster, vps_id: str) -> bool:
    return state(cluster, vps_id) == "running"


def ssh_ok(cluster: Cluster, home: Path, vps_id: str, key: Path) -> bool:
    done = kawa(cluster, home, "ssh", vps_id, "-i", str(key), "--", *SSH_OPTS, "true", timeout=30)
    return done.returncode == 0


def remove_snapshots(vps_id: str) -> None:
    client = docker.from_env()
    try:
        for image in client.images.list(name=f"kawa-vps/{vps_id}"):
            for tag in image.tags:
                client.images.remove(tag, force=True)
    finally:
        client.close()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    (h / ".ssh").mkdir(parents=True)
    return h


def test_vps_lifecycle(fresh_cluster: Cluster, home: Path, tmp_path: Path) -> None:
    """create → ssh runs a command → scp in and out → pause/resume → snapshot → stop →
    (container removed) restart from the snapshot keeps the file → runner restart keeps
    the VPS running."""
    cluster = fresh_cluster
    cluster.add_runner("node1", cores=2)
    key = home / ".ssh" / "id_ed25519"
    keygen(key)  # the default key: ~/.ssh/id_ed25519.pub
    vps_id = created_id(kawa(cluster, home, "vps", "create", "--name", "box"))
    try:
        eventually(lambda: state(cluster, vps_id) == "running", 60, "VPS running")
        eventually(lambda: ssh_ok(cluster, home, vps_id, key), 60, "sshd answering")
        done = kawa(cluster, home, "ssh", vps_id, "--", *SSH_OPTS, "echo", "hi")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "hi"

        # scp in and out through the same ProxyCommand
        local = tmp_path / "in.bin"
        local.write_bytes(os.urandom(300_000))
        env = cluster._env(
            KAWA_CLIENT_URL=cluster.url, KAWA_CLIENT_TOKEN=cluster.token, HOME=str(home)
        )
        proxy = ["-o", f"ProxyCommand={proxy_command(vps_id)}", "-i", str(key), *SSH_OPTS]
        up = subprocess.run(
            ["scp", *proxy, str(local), f"root@kawa-{vps_id}:/root/kept.bin"],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert up.returncode == 0, up.stderr
        back = tmp_path / "out.bin"
        down = subprocess.run(
            ["scp", *proxy, f"root@kawa-{vps_id}:/root/kept.bin", str(back)],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert down.returncode == 0, down.stderr
        assert back.read_bytes() == local.read_bytes()

        # pause freezes it (kawa ssh refuses, naming the state); resume brings it back
        assert kawa(cluster, home, "vps", "pause", vps_id).returncode == 0
        eventually(lambda: state(cluster, vps_id) == "paused", 30, "VPS paused")
        frozen = kawa(cluster, home, "ssh", vps_id, "--", *SSH_OPTS, "true")
        assert frozen.returncode != 0 and "paused" in frozen.stderr
        assert kawa(cluster, home, "vps", "resume", vps_id).returncode == 0
        eventually(lambda: state(cluster, vps_id) == "running", 30, "VPS resumed")
        eventually(lambda: ssh_ok(cluster, home, vps_id, key), 60, "sshd after resume")

        snap = kawa(cluster, home, "vps", "snapshot", vps_id)
        assert snap.returncode == 0, snap.stderr
        with contextlib.closing(docker.from_env()) as d:
            assert d.images.list(name=f"kawa-vps/{vps_id}")

        stopped = kawa(cluster, home, "vps", "stop", vps_id)
        assert stopped.returncode == 0, stopped.stderr
        eventually(lambda: state(cluster, vps_id) == "stopped", 30, "VPS stopped")
        refused = kawa(cluster, home, "ssh", vps_id, "--", *SSH_OPTS, "true")
        assert refused.returncode != 0
        assert "stopped" in refused.stderr
        # the stopped container is kept; without it, a restart starts from the snapshot
        with contextlib.closing(docker.from_env()) as d:
            kept = d.containers.get(f"kawa-node1-{vps_id}")
            assert kept.status == "exited"
            kept.remove()
        listed = kawa(cluster, home, "vps", "list")
        assert vps_id not in listed.stdout
        assert vps_id in kawa(cluster, home, "vps", "list", "--all").stdout

        again = kawa(cluster, home, "vps", "restart", vps_id)
        assert again.returncode == 0, again.stderr
        eventually(lambda: state(cluster, vps_id) == "running", 60, "VPS running again")
        eventually(lambda: ssh_ok(cluster, home, vps_id, key), 60, "sshd answering again")
        done = kawa(cluster, home, "ssh", vps_id, "--", *SSH_OPTS, "sha256sum /root/kept.bin")
        assert done.returncode == 0, done.stderr
        assert hashlib.sha256(local.read_bytes()).hexdigest() in done.stdout

        # a runner restart keeps the VPS (and its sshd) running
        cluster.stop_runner("node1")
        cluster.start_runner("node1")
        eventually(lambda: state(cluster, vps_id) == "running", 60, "VPS running after restart")
        eventually(lambda: ssh_ok(cluster, home, vps_id, key), 60, "sshd after runner restart")
        # and the re-adopted VPS restarts in place
        done = kawa(cluster, home, "vps", "restart", vps_id)
        assert done.returncode == 0 and "now running" in done.stdout, done.stderr
        eventually(lambda: ssh_ok(cluster, home, vps_id, key), 60, "sshd after an in-place restart")
        done = kawa(cluster, home, "ssh", vps_id, "--", *SSH_OPTS, "sha256sum /root/kept.bin")
        assert hashlib.sha256(local.read_bytes()).hexdigest() in done.stdout, done.stderr

        status = kawa(cluster, home, "vps", "status", vps_id)
        assert "SHA256:" in status.stdout and f"kawa-node1-{vps_id}" in status.stdout
        config = kawa(cluster, home, "ssh-config")
        assert "Host kawa-box" in config.stdout and "ProxyCommand" in config.stdout
    finally:
        remove_snapshots(vps_id)


def ssh_out(cluster: Cluster, home: Path, vps_id: str, command: str) -> str:
    done = kawa(cluster, home, "ssh", vps_id, "--", *SSH_OPTS, command, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


def history(cluster: Cluster, vps_id: str) -> list[tuple[str, str]]:
    with cluster.client() as c:
        return [(h.target.value, h.cause) for h in c.task(vps_id).history]


def token_for(cluster: Cluster, user: str, role: str) -> str:
    """A token made the way `kawa init token` makes one."""
    sessions = prepare_database(cluster.host_config())
    try:
        return Authenticator(sessions, cluster.secret).create_token(user, role)
    finally:
        sessions.kw["bind"].dispose()


def test_vps_restart_in_place_and_rm(fresh_cluster: Cluster, home: Path) -> None:
    """restart of a running, then a paused VPS stops and starts the same container (a
    file, the host key and the authorized key stay; ssh answers again); ``vps rm``
    refuses a running VPS, removes a stopped one's container and snapshots, and
    ``--force`` stops and removes a running one."""
    cluster = fresh_cluster
    cluster.add_runner("node1", cores=2)
    key = home / ".ssh" / "id_ed25519"
    keygen(key)
    vps_id = created_id(kawa(cluster, home, "vps", "create", "--name", "re"))
    forced = ""
    try:
        eventually(partial(is_running, cluster, vps_id), 60, "VPS running")
        eventually(partial(ssh_ok, cluster, home, vps_id, key), 60, "sshd answering")
        ssh_out(cluster, home, vps_id, "echo kept-across-restarts > /root/kept.txt")
        host_key = ssh_out(cluster, home, vps_id, "cat /etc/ssh/ssh_host_ed25519_key.pub")
        assert host_key.startswith("ssh-ed25519 ")
        (container,) = cluster.containers(task=vps_id)
        boots = ssh_out(cluster, home, vps_id, "cat /proc/1/stat").split()[21]  # start time

        for before in ("running", "paused"):
            if before == "paused":
                assert kawa(cluster, home, "vps", "pause", vps_id).returncode == 0
                eventually(lambda: state(cluster, vps_id) == "paused", 30, "VPS paused")
            done = kawa(cluster, home, "vps", "restart", vps_id)
            assert done.returncode == 0, done.stderr
            assert "now running" in done.stdout, done.stdout
            assert state(cluster, vps_id) == "running"
            eventually(partial(ssh_ok, cluster, home, vps_id, key), 60, f"sshd after {before}")
            assert ssh_out(cluster, home, vps_id, "cat /root/kept.txt") == "kept-across-restarts\n"
            assert ssh_out(cluster, home, vps_id, "cat /etc/ssh/ssh_host_ed25519_key.pub") == (
                host_key
            )
            (again,) = cluster.containers(task=vps_id)
            assert again.id == container.id  # the same container, started anew
            started = ssh_out(cluster, home, vps_id, "cat /proc/1/stat").split()[21]
            assert started != boots, "the container's processes were not restarted"
            boots = started
        steps = history(cluster, vps_id)
        causes = [cause for _, cause in steps]
        assert causes.count("runner stopped and started the container the task") == 2
        # the allocation was held throughout: the VPS never left a state that holds it
        assert {target for target, _ in steps} == {"pending", "assigning", "running", "paused"}
        with cluster.client() as c:
            assert c.node("node1").held.cores == 1

        # rm: a running VPS is refused without --force, and nothing changes
        refused = kawa(cluster, home, "vps", "rm", vps_id)
        assert refused.returncode != 0
        assert "is running: stop it first" in refused.stderr and "--force" in refused.stderr
        assert state(cluster, vps_id) == "running" and cluster.containers(task=vps_id)

        # rm of a stopped VPS removes its container and snapshots; the row stays
        snap = kawa(cluster, home, "vps", "snapshot", vps_id)
        assert snap.returncode == 0, snap.stderr
        assert kawa(cluster, home, "vps", "stop", vps_id).returncode == 0
        eventually(lambda: state(cluster, vps_id) == "stopped", 30, "VPS stopped")
        assert cluster.containers(task=vps_id)  # kept while stopped
        for user, role in (("bob", "user"), ("vic", "viewer")):  # not theirs to remove
            with KawaClient(cluster.url, token_for(cluster, user, role)) as other:
                with pytest.raises(KawaError) as refused_to:
                    other.remove_vps(vps_id)
                assert refused_to.value.status in (403, 404), refused_to.value.message
        assert state(cluster, vps_id) == "stopped" and cluster.containers(task=vps_id)
        done = kawa(cluster, home, "vps", "rm", vps_id)
        assert done.returncode == 0, done.stderr
        assert state(cluster, vps_id) == "removed"
        assert cluster.containers(task=vps_id) == []
        with contextlib.closing(docker.from_env()) as d:
            assert d.images.list(name=f"kawa-vps/{vps_id}") == []
        assert vps_id not in kawa(cluster, home, "vps", "list").stdout
        listed = kawa(cluster, home, "vps", "list", "--all").stdout
        assert vps_id in listed and "removed" in listed
        again = kawa(cluster, home, "vps", "restart", vps_id)
        assert again.returncode != 0 and "removed" in again.stderr
        twice = kawa(cluster, home, "vps", "rm", vps_id)
        assert twice.returncode != 0 and "removed" in twice.stderr

        # --force stops a running VPS and removes it; its resources are given back
        forced = created_id(kawa(cluster, home, "vps", "create"))
        eventually(partial(is_running, cluster, forced), 60, "second VPS running")
        done = kawa(cluster, home, "vps", "rm", "--force", forced)
        assert done.returncode == 0, done.stderr
        assert state(cluster, forced) == "removed"
        assert cluster.containers(task=forced) == []
        with cluster.client() as c:
            eventually(lambda: c.node("node1").held.cores == 0, 30, "cores released")
            # only a VPS can be removed
            command = c.submit(TaskSpec(command=["true"])).tasks[0].id
            with pytest.raises(KawaError, match="only VPS tasks can"):
                c.remove_vps(command)
    finally:
        remove_snapshots(vps_id)
        if forced:
            remove_snapshots(forced)


def test_vps_retention_removes_a_stopped_container(
    docker_available: None, tmp_path: Path, home: Path
) -> None:
    """With a tiny ``host.vps_retention`` a stopped VPS's container is removed by the host
    once it has been stopped that long, and the VPS is recorded as removed."""
    retention = 2.0
    cluster = Cluster(tmp_path / "c", BASE_IMAGE)
    cluster.extra_host_env["KAWA_HOST_VPS_RETENTION"] = str(retention)
    try:
        cluster.root.mkdir()
        cluster.start_host()
        cluster.add_runner("node1", cores=2)
        vps_id = created_id(kawa(cluster, home, "vps", "create", "--no-ssh-key"))
        eventually(partial(is_running, cluster, vps_id), 60, "VPS running")
        assert cluster.containers(task=vps_id)
        with cluster.client() as c:
            c.act(vps_id, TaskAction.STOP)
        eventually(lambda: state(cluster, vps_id) in ("stopped", "removed"), 30, "VPS stopped")
        eventually(lambda: state(cluster, vps_id) == "removed", 30, "VPS removed by retention")
        assert cluster.containers(task=vps_id) == []
        with cluster.client() as c:
            steps = {h.target.value: h for h in c.task(vps_id).history}
        assert "vps_retention" in steps["removed"].cause
        kept = (steps["removed"].at - steps["stopped"].at).total_seconds()
        assert kept >= retention, f"removed {kept:.2f}s after the stop"
    finally:
        cluster.close()


def test_vps_key_modes(fresh_cluster: Cluster, home: Path, tmp_path: Path) -> None:
    cluster = fresh_cluster
    cluster.add_runner("node1", cores=4)
    created: list[str] = []
    try:
        # --public-key-file
        key = tmp_path / "k1"
        keygen(key)
        created.append(
            created_id(kawa(cluster, home, "vps", "create", "--public-key-file", f"{key}.pub"))
        )
        # --public-key-string
        key2 = tmp_path / "k2"
        text = keygen(key2)
        created.append(
            created_id(kawa(cluster, home, "vps", "create", "--public-key-string", text))
        )
        # --gen-ssh-key with the default location ~/.ssh/kawa_vps_<id>
        created.append(created_id(kawa(cluster, home, "vps", "create", "--gen-ssh-key")))
        generated = home / ".ssh" / f"kawa_vps_{created[2]}"
        assert stat.S_IMODE(generated.stat().st_mode) == 0o600
        # --gen-ssh-key --key-out-file
        out = tmp_path / "mine" / "key"
        gen = kawa(cluster, home, "vps", "create", "--gen-ssh-key", "--key-out-file", str(out))
        created.append(created_id(gen))
        assert stat.S_IMODE(out.stat().st_mode) == 0o600

        for vps_id, identity in zip(created, [key, key2, generated, out], strict=True):
            eventually(partial(is_running, cluster, vps_id), 60, "VPS running")
            eventually(partial(ssh_ok, cluster, home, vps_id, identity), 60, f"ssh into {vps_id}")
        # the generated key is used by default (~/.ssh/kawa_vps_<id>)
        done = kawa(cluster, home, "ssh", created[2], "--", *SSH_OPTS, "echo", "gen")
        assert done.stdout.strip() == "gen", done.stderr
        # a key that is not the VPS's is refused by its sshd
        wrong = kawa(cluster, home, "ssh", created[0], "-i", str(key2), "--", *SSH_OPTS, "true")
        assert wrong.returncode == 255
    finally:
        with cluster.client() as c:
            for vps_id in created:
                c.act(vps_id, TaskAction.STOP)


def test_vps_bad_input(fresh_cluster: Cluster, home: Path, tmp_path: Path) -> None:
    cluster = fresh_cluster
    key = tmp_path / "k"
    text = keygen(key)

    def refused(*args: str) -> str:
        done = kawa(cluster, home, "vps", "create", *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        return done.stderr

    assert "no public key found" in refused()  # empty ~/.ssh
    both = refused("--public-key-file", f"{key}.pub", "--public-key-string", text)
    assert "choose one key option" in both
    assert "choose one key option" in refused("--no-ssh-key", "--public-key-string", text)
    assert "choose one key option" in refused("--no-ssh-key", "--gen-ssh-key")
    assert "not an OpenSSH public key" in refused("--public-key-string", "hello world")
    assert "malformed" in refused("--public-key-string", "ssh-ed25519 @@@notbase64")
    assert "cannot read public key" in refused("--public-key-file", str(tmp_path / "missing"))
    assert "private key" in refused("--public-key-file", str(key))
    assert "--key-out-file goes with --gen-ssh-key" in refused("--key-out-file", "x")
    native = refused("--public-key-string", text, "--container", "NULL")
    assert "a VPS needs a container environment" in native, native
    # an unknown node, or a GPU the node lacks: refused before anything is stored
    cluster.add_runner("node1", cores=2)
    for target, named in (("nope", "nope"), ("node1::5", "GPU")):
        done = kawa(cluster, home, "vps", "create", "--public-key-string", text, "-t", target)
        assert done.returncode != 0 and named in done.stderr, done.stderr
    with cluster.client() as c:
        assert c.tasks(kind="vps") == []
    # command tasks cannot carry a key (API), and a VPS takes no command
    with cluster.client() as c:
        from kawa.client.errors import KawaError
        from kawa.protocol.tasks import TaskSpec

        with pytest.raises(KawaError, match="VPS tasks only"):
            c.submit(TaskSpec(command=["true"], ssh_key=text))
        with pytest.raises(KawaError, match="takes no command"):
            c.submit(TaskSpec(kind="vps", command=["true"], ssh_key=text))  # type: ignore[arg-type]
        # NULL (native execution) is not a container environment: a VPS needs one
        for spec in (
            TaskSpec(kind="vps", container="NULL", ssh_key=text),  # type: ignore[arg-type]
            TaskSpec(kind="vps", native=True, ssh_key=text),  # type: ignore[arg-type]
        ):
            with pytest.raises(KawaError, match="a VPS needs a container environment"):
                c.submit(spec)
        assert c.tasks(kind="vps") == []


def test_vps_without_sshd_fails_with_a_message(fresh_cluster: Cluster, home: Path) -> None:
    cluster = fresh_cluster
    cluster.add_runner("node1", cores=2)
    client = docker.from_env()
    image = "kawa-test/no-sshd:latest"
    try:
        box = client.containers.create(cluster.image, ["rm", "/usr/sbin/sshd"])
        try:
            box.start()
            assert box.wait()["StatusCode"] == 0
            box.commit(repository="kawa-test/no-sshd", tag="latest")
        finally:
            box.remove(force=True)
        done = kawa(cluster, home, "vps", "create", "--no-ssh-key", "--image", image)
        vps_id = created_id(done)
        assert "WARNING" in done.stderr
        eventually(lambda: state(cluster, vps_id) == "failed", 60, "VPS failed")
        with cluster.client() as c:
            assert "no /usr/sbin/sshd" in (c.task(vps_id).error or "")
    finally:
        client.images.remove(image, force=True)
        client.close()


@dataclass
class GatewayCluster(Cluster):
    """A cluster whose host runs the SSH gateway on a port of its own."""

    ssh_port: int = 0
    admin_keys: Path | None = None
    fast_path: bool = True
    """The host's ``ssh_fast_path`` (False: the gateway runs on asyncssh's own path)."""

    def host_config(self) -> HostConfig:
        admin = Path(f"{self.admin_keys}.pub") if self.admin_keys else None
        update = {
            "ssh_port": self.ssh_port,
            "admin_ssh_keys": admin,
            "ssh_fast_path": self.fast_path,
        }
        return super().host_config().model_copy(update=update)

    def fast_path_taken(self) -> bool:
        """Whether the host's gateway runs on asyncssh's fast path, by its log."""
        log = (self.root / "host.log").read_text(errors="replace")
        return "SSH gateway fast path off" not in log


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "asyncssh-path"])
def test_ssh_gateway(docker_available: None, tmp_path: Path, home: Path, fast_path: bool) -> None:
    """`ssh -J kawa@HOST:PORT root@<vps>` with stock OpenSSH; everything else refused.
    On the gateway's fast path through asyncssh's internals and on asyncssh's own."""
    port = free_port()
    admin = tmp_path / "admin"
    keygen(admin)
    cluster = GatewayCluster(
        tmp_path / "c", BASE_IMAGE, ssh_port=port, admin_keys=admin, fast_path=fast_path
    )
    vps_id = ""
    try:
        cluster.root.mkdir()
        cluster.start_host()
        cluster.add_runner("node1", cores=2)
        key, stranger = tmp_path / "user", tmp_path / "stranger"
        keygen(key)
        keygen(stranger)
        vps_id = created_id(
            kawa(cluster, home, "vps", "create", "--name", "gw", "--public-key-file", f"{key}.pub")
        )
        eventually(lambda: state(cluster, vps_id) == "running", 60, "VPS running")

        def config(identity: Path) -> Path:
            path = tmp_path / f"config-{identity.name}"
            path.write_text(
                f"Host gateway\n  HostName 127.0.0.1\n  Port {port}\n  User kawa\n"
                f"Host *\n  IdentityFile {identity}\n  IdentitiesOnly yes\n"
                "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
                "  BatchMode yes\n  LogLevel ERROR\n  ConnectTimeout 20\n"
            )
            return path

        def ssh(identity: Path, *args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["ssh", "-F", str(config(identity)), *args],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip

        def jump_ok() -> bool:
            return ssh(key, "-J", "gateway", f"root@{vps_id}", "true").returncode == 0

        eventually(jump_ok, 60, "ssh -J through the gateway")
        done = ssh(key, "-J", "gateway", f"root@{vps_id}", "echo", "via-gateway")
        assert done.stdout.strip() == "via-gateway", done.stderr
        by_name = ssh(key, "-J", "gateway", "root@gw", "echo", "by-name")
        assert by_name.stdout.strip() == "by-name", by_name.stderr
        by_prefix = ssh(key, "-J", "gateway", f"root@{vps_id[:-2]}", "echo", "prefix")
        assert by_prefix.stdout.strip() == "prefix", by_prefix.stderr
        # scp (SFTP underneath) and sftp through the gateway, as stock OpenSSH runs them
        payload = tmp_path / "payload.bin"
        payload.write_bytes(os.urandom(3 * 1024 * 1024 + 7))
        jump = ["-F", str(config(key)), "-J", "gateway"]
        scp_in = subprocess.run(
            ["scp", *jump, str(payload), f"root@{vps_id}:/root/payload.bin"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert scp_in.returncode == 0, scp_in.stderr
        fetched = tmp_path / "fetched.bin"
        batch = tmp_path / "batch"
        batch.write_text(f"get /root/payload.bin {fetched}\n")
        sftp = subprocess.run(
            ["sftp", *jump, "-b", str(batch), f"root@{vps_id}"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert sftp.returncode == 0, sftp.stderr
        assert fetched.read_bytes() == payload.read_bytes()
        # the admin key reaches the gateway; the VPS's own sshd still wants its key
        assert ssh(admin, "-W", f"{vps_id}:22", "gateway").stdout.startswith("SSH-2.0")

        unknown = ssh(stranger, "-J", "gateway", f"root@{vps_id}", "true")
        assert unknown.returncode == 255 and "Permission denied" in unknown.stderr
        other_port = ssh(key, "-o", "LogLevel=INFO", "-W", f"{vps_id}:23", "gateway")
        assert other_port.returncode != 0 and "only port 22" in other_port.stderr
        missing = ssh(key, "-o", "LogLevel=INFO", "-W", "999:22", "gateway")
        assert missing.returncode != 0 and "no VPS" in missing.stderr
        shell = ssh(key, "-o", "LogLevel=INFO", "gateway", "true")
        assert shell.returncode != 0 and "no shells here" in shell.stderr, shell.stderr
        assert cluster.fast_path_taken() == fast_path
    finally:
        cluster.close()


def test_without_tunnels_kawa_ssh_and_proxy_relay_a_session(
    docker_available: None, tmp_path: Path, home: Path
) -> None:
    """A host that relays frames carries no tunnels: ``kawa ssh`` then relays ssh's
    connection over a forward session itself, and ``kawa proxy`` (scp) does too."""
    cluster = Cluster(tmp_path / "frames", BASE_IMAGE)
    cluster.extra_host_env["KAWA_HOST_STREAM_RELAY"] = "frames"
    try:
        cluster.start_host()
        cluster.add_runner("node1", cores=2)
        key = home / ".ssh" / "id_ed25519"
        keygen(key)
        vps_id = created_id(kawa(cluster, home, "vps", "create"))
        eventually(lambda: state(cluster, vps_id) == "running", 60, "VPS running")
        eventually(lambda: ssh_ok(cluster, home, vps_id, key), 60, "sshd answering")
        done = kawa(cluster, home, "ssh", vps_id, "--", *SSH_OPTS, "head -c 3000000 /dev/zero")
        assert done.returncode == 0, done.stderr
        assert len(done.stdout) == 3_000_000
        local = tmp_path / "in.bin"
        local.write_bytes(os.urandom(200_000))
        env = cluster._env(
            KAWA_CLIENT_URL=cluster.url, KAWA_CLIENT_TOKEN=cluster.token, HOME=str(home)
        )
        proxy = ["-o", f"ProxyCommand={proxy_command(vps_id)}", "-i", str(key), *SSH_OPTS]
        sent = subprocess.run(
            ["scp", *proxy, str(local), f"root@kawa-{vps_id}:/root/in.bin"],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        back = kawa(cluster, home, "ssh", vps_id, "--", *SSH_OPTS, "sha256sum /root/in.bin")
        assert hashlib.sha256(local.read_bytes()).hexdigest() in back.stdout
        with cluster.client() as c:
            c.act(vps_id, TaskAction.KILL)
    finally:
        cluster.close()
