"""Bulk data through the SSH gateway (`ssh -J`) with stock OpenSSH and a real VPS.

The gateway decrypts and re-encrypts the outer SSH layer itself (kawa.gateway: AES-GCM
only, the channel as a session instead of streams, and on its fast path through
asyncssh's internals coalesced writes, split reads and packets sealed and opened
itself); these tests check, on the fast path and on asyncssh's own, that every byte
arrives intact both ways, also both ways at once, that the cipher a plain OpenSSH client
negotiates is AES-GCM, and that a client that stops reading does not make the gateway
buffer without bound.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.conftest import BASE_IMAGE
from tests.integration.cluster import eventually, free_port
from tests.integration.test_vps import GatewayCluster, created_id, kawa, keygen, state

_NO_SSH = shutil.which("ssh") is None or shutil.which("ssh-keygen") is None
if _NO_SSH and os.environ.get("CI") == "true":  # CI must exercise SSH: fail, never skip
    raise RuntimeError("the OpenSSH client is missing (scripts/bootstrap.sh installs it)")
pytestmark = pytest.mark.skipif(_NO_SSH, reason="the OpenSSH client is not installed")

MB = 1024 * 1024


@dataclass
class Gateway:
    cluster: GatewayCluster
    vps_id: str
    config: Path

    def argv(self, *command: str, verbose: bool = False) -> list[str]:
        """A plain `ssh -J` as a user types it (no cipher options)."""
        extra = ["-v"] if verbose else []
        return [
            "ssh",
            "-F",
            str(self.config),
            *extra,
            "-J",
            "gateway",
            f"root@{self.vps_id}",
            *command,
        ]

    def run(
        self, *command: str, data: bytes = b"", timeout: float = 120
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            self.argv(*command), input=data, capture_output=True, timeout=timeout, check=False
        )


@pytest.fixture(scope="module", params=[True, False], ids=["fast-path", "asyncssh-path"])
def gateway(
    docker_available: None, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("gw-bulk")
    home = tmp / "home"
    (home / ".ssh").mkdir(parents=True)
    port = free_port()
    cluster = GatewayCluster(tmp / "c", BASE_IMAGE, ssh_port=port, fast_path=request.param)
    try:
        cluster.root.mkdir()
        cluster.start_host()
        cluster.add_runner("node1", cores=2)
        key = tmp / "user"
        keygen(key)
        vps_id = created_id(kawa(cluster, home, "vps", "create", "--public-key-file", f"{key}.pub"))
        eventually(lambda: state(cluster, vps_id) == "running", 60, "VPS running")
        config = tmp / "ssh_config"
        config.write_text(
            f"Host gateway\n  HostName 127.0.0.1\n  Port {port}\n  User kawa\n"
            f"Host *\n  IdentityFile {key}\n  IdentitiesOnly yes\n"
            "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
            "  BatchMode yes\n  LogLevel ERROR\n  ConnectTimeout 20\n"
        )
        gw = Gateway(cluster, vps_id, config)
        eventually(lambda: gw.run("true", timeout=30).returncode == 0, 60, "ssh -J works")
        yield gw
    finally:
        cluster.close()


def test_plain_openssh_negotiates_aes_gcm_with_the_gateway(gateway: Gateway) -> None:
    done = subprocess.run(
        gateway.argv("true", verbose=True), capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    kex = [line for line in done.stderr.splitlines() if "kex: server->client cipher:" in line]
    # two SSH layers: the jump (client <-> gateway) and the VPS's own sshd, end to end
    assert len(kex) == 2, kex
    assert sum("aes128-gcm@openssh.com" in line for line in kex) >= 1, kex
    assert gateway.cluster.fast_path_taken() == gateway.cluster.fast_path


def test_download_and_upload_arrive_intact(gateway: Gateway) -> None:
    made = gateway.run("head -c 40000000 /dev/urandom > /tmp/blob && sha256sum /tmp/blob")
    assert made.returncode == 0, made.stderr
    remote_hash = made.stdout.split()[0].decode()

    down = gateway.run("cat /tmp/blob")
    assert down.returncode == 0, down.stderr
    assert len(down.stdout) == 40_000_000
    assert hashlib.sha256(down.stdout).hexdigest() == remote_hash

    data = os.urandom(40 * MB + 12345)  # not a multiple of any packet or frame size
    up = gateway.run("sha256sum", data=data)
    assert up.returncode == 0, up.stderr
    assert up.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()


def test_both_directions_at_once_and_half_close(gateway: Gateway) -> None:
    """`cat` echoes while the upload is still going; the end of input reaches it."""
    data = os.urandom(24 * MB + 7)
    echoed = gateway.run("cat", data=data)
    assert echoed.returncode == 0, echoed.stderr
    assert len(echoed.stdout) == len(data)
    assert hashlib.sha256(echoed.stdout).digest() == hashlib.sha256(data).digest()


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_a_reader_that_stops_does_not_make_the_gateway_buffer(gateway: Gateway) -> None:
    """1 GiB offered to a client that reads nothing for a while: the host's memory stays
    bounded, then everything still arrives intact. (The inner SSH layer's own windows
    bound this direction too, so the memory check guards the whole path rather than the
    gateway alone; the VPS-side test below isolates the gateway's own backpressure.)"""
    host = gateway.cluster.host_proc
    assert host is not None
    size = 1024 * MB
    before = _rss(host.pid)
    with subprocess.Popen(
        gateway.argv(f"head -c {size} /dev/zero"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as proc:
        assert proc.stdout is not None
        try:
            assert proc.stdout.read(1) == b"\0"  # the transfer has started
            peak = before
            deadline = time.monotonic() + 4.0
            while time.monotonic() < deadline:  # a bounded look while nothing is read
                peak = max(peak, _rss(host.pid))
                time.sleep(0.1)
            assert proc.poll() is None, "the transfer ended although nothing was read"
            assert peak - before < 96 * MB, f"host memory grew by {(peak - before) // MB} MB"
            rest = 0
            while chunk := proc.stdout.read(1 << 20):
                rest += len(chunk)
            assert proc.wait(120) == 0
            assert 1 + rest == size
        finally:
            if proc.poll() is None:
                proc.kill()


def test_a_vps_that_stops_reading_does_not_make_the_gateway_buffer(gateway: Gateway) -> None:
    """The other way round, without the inner SSH layer's own flow control: a raw
    ``ssh -W`` client offers 768 MiB to a VPS whose sshd is frozen (``docker pause``).
    The gateway must stop taking bytes (channel window) instead of buffering them: the
    writer gets stuck and the host's memory stays bounded."""
    host = gateway.cluster.host_proc
    assert host is not None
    client = docker.from_env()
    container = client.containers.get(f"kawa-node1-{gateway.vps_id}")
    offered, chunk = 768 * MB, bytes(1 << 20)
    written = 0

    def feed(stdin: Any) -> None:
        nonlocal written
        try:
            while written < offered:
                stdin.write(chunk)
                written += len(chunk)
            stdin.close()
        except (BrokenPipeError, ValueError, OSError):
            pass

    container.pause()
    try:
        before = _rss(host.pid)
        with subprocess.Popen(
            ["ssh", "-F", str(gateway.config), "-W", f"{gateway.vps_id}:22", "gateway"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ) as proc:
            writer = threading.Thread(target=feed, args=(proc.stdin,), daemon=True)
            writer.start()
            try:
                eventually(lambda: written >= 8 * MB, 30, "the first bytes taken")
                peak = before
                deadline = time.monotonic() + 5.0
                while time.monotonic() < deadline:  # a bounded look while the VPS is frozen
                    peak = max(peak, _rss(host.pid))
                    time.sleep(0.1)
                assert written < offered, "everything was taken although nobody read it"
                assert peak - before < 96 * MB, f"host memory grew by {(peak - before) // MB} MB"
            finally:
                proc.kill()
                writer.join(30)
    finally:
        container.unpause()
        client.close()
    # the VPS is reachable again once thawed
    eventually(lambda: gateway.run("true", timeout=30).returncode == 0, 60, "ssh -J after thaw")
