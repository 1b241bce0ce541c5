"""``kawa forward``: HTTP servers inside real containers reached through one session per
forward, host → runner → the container's address (bridge IP, or 127.0.0.1 on the host
network). Nothing is installed in the container and no Docker port is published."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from kawa.client.errors import KawaError
from kawa.client.tunnel import TunnelUnavailable, open_tunnel
from kawa.protocol import streams as proto
from kawa.protocol.tasks import TaskAction, TaskSpec
from tests.conftest import BASE_IMAGE
from tests.integration.cluster import KAWA, Cluster, eventually, free_port

BIG = 256 * 1024 * 1024
SERVE = (
    "mkdir -p /srv && echo hello > /srv/small && head -c {size} /dev/urandom > /srv/big"
    " && sha256sum /srv/big | cut -d' ' -f1 > /srv/big.sha"
    " && exec python3 -m http.server {port} --bind {bind} --directory /srv"
)


def start(cluster: Cluster, command: str, network: str) -> str:
    with cluster.client() as c:
        [t] = c.submit(
            TaskSpec(command=["sh", "-c", command], network=network, targets=["node1"])  # type: ignore[arg-type]
        ).tasks
        eventually(lambda: c.task(t.id).state == "running", what="server task running")
        return t.id


@pytest.fixture(scope="module")
def bridge_server(cluster: Cluster) -> Iterator[str]:
    """An HTTP server on port 8765 of a bridge-network container, with a 256 MB file."""
    task_id = start(cluster, SERVE.format(size=BIG, port=8765, bind="0.0.0.0"), "bridge")
    with forwarding(cluster, task_id, 8765) as (local, _):
        eventually(lambda: serves(local), timeout=60, what="the server in the task")
    yield task_id
    with cluster.client() as c:
        c.act(task_id, TaskAction.KILL)


@pytest.fixture(scope="module", params=["splice", "frames"])
def relay_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Cluster, str]]:
    """The bridge server behind each of the host's stream relays: ``splice`` (the
    default, the module's cluster) and ``frames`` (a cluster of its own)."""
    if request.param == "splice":
        yield request.getfixturevalue("cluster"), request.getfixturevalue("bridge_server")
        return
    request.getfixturevalue("docker_available")
    c = Cluster(Path(tmp_path_factory.mktemp("frames")), BASE_IMAGE)
    c.extra_host_env["KAWA_HOST_STREAM_RELAY"] = "frames"
    try:
        c.start_host()
        c.add_runner("node1", cores=2)
        task_id = start(c, SERVE.format(size=BIG, port=8765, bind="0.0.0.0"), "bridge")
        with forwarding(c, task_id, 8765) as (local, _):
            eventually(lambda: serves(local), timeout=60, what="the server in the task")
        yield c, task_id
    finally:
        c.close()


@contextmanager
def forwarding(
    cluster: Cluster, task_id: str, port: int, *extra: str
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """``kawa forward`` as a user runs it; yields the local port once it listens."""
    env = cluster._env(KAWA_CLIENT_URL=cluster.url, KAWA_CLIENT_TOKEN=cluster.token)
    proc = subprocess.Popen(
        [*KAWA, "forward", task_id, str(port), "--local-port", "0", *extra],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        line = b""
        deadline = time.monotonic() + 30
        while not line.endswith(b"\n") and time.monotonic() < deadline and proc.poll() is None:
            if select.select([proc.stdout], [], [], 0.2)[0]:
                line += os.read(proc.stdout.fileno(), 1)
        assert line.startswith(b"listening on 127.0.0.1:"), (
            line,
            proc.stderr.read() if proc.poll() is not None else b"",
        )
        yield int(line.split()[2].rsplit(b":", 1)[1]), proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def serves(local: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{local}/small", timeout=5).text == "hello\n"
    except httpx.HTTPError:
        return False


def fetch_sha(local: int) -> str:
    return httpx.get(f"http://127.0.0.1:{local}/big.sha", timeout=30).text.strip()


def test_fifty_concurrent_connections_and_a_large_transfer(
    relay_server: tuple[Cluster, str],
) -> None:
    cluster, task_id = relay_server
    with forwarding(cluster, task_id, 8765) as (local, _):

        async def many() -> list[str]:
            limits = httpx.Limits(max_connections=50, max_keepalive_connections=0)
            async with httpx.AsyncClient(limits=limits, timeout=30) as client:
                replies = await asyncio.gather(
                    *(client.get(f"http://127.0.0.1:{local}/small") for _ in range(50))
                )
            return [r.text for r in replies]

        assert asyncio.run(many()) == ["hello\n"] * 50
        digest, size = hashlib.sha256(), 0
        started = time.monotonic()
        with httpx.stream("GET", f"http://127.0.0.1:{local}/big", timeout=60) as r:
            for chunk in r.iter_raw(1 << 20):
                digest.update(chunk)
                size += len(chunk)
        elapsed = time.monotonic() - started
        assert size == BIG
        assert digest.hexdigest() == fetch_sha(local), "256 MB arrived intact"
        print(f"256 MB through kawa forward in {elapsed:.2f}s ({BIG / elapsed / 1e6:.0f} MB/s)")


def test_host_network_task_is_reached_on_the_node(cluster: Cluster) -> None:
    port = free_port()
    task_id = start(cluster, SERVE.format(size=1000, port=port, bind="127.0.0.1"), "host")
    try:
        with forwarding(cluster, task_id, port) as (local, _):
            assert eventually(
                lambda: httpx.get(f"http://127.0.0.1:{local}/small").text == "hello\n"
            )
    finally:
        with cluster.client() as c:
            c.act(task_id, TaskAction.KILL)


def test_slow_reader_keeps_memory_bounded(cluster: Cluster, bridge_server: str) -> None:
    procs = [psutil.Process(p.pid) for p in (cluster.host_proc, cluster.runners["node1"].proc) if p]
    with forwarding(cluster, bridge_server, 8765) as (local, cli):
        procs.append(psutil.Process(cli.pid))
        before = [p.memory_info().rss for p in procs]
        with socket.create_connection(("127.0.0.1", local)) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            s.sendall(b"GET /big HTTP/1.0\r\n\r\n")
            got, worst = 0, [0] * len(procs)
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:  # ~2 MB/s against a server that has 256 MB
                got += len(s.recv(16384))
                time.sleep(0.008)
                worst = [
                    max(w, p.memory_info().rss - b)
                    for w, p, b in zip(worst, procs, before, strict=True)
                ]
        assert got > 100_000
        for proc, grew in zip(procs, worst, strict=True):
            assert grew < 48 * 1024 * 1024, f"{proc.cmdline()[-3:]} grew {grew / 1e6:.0f} MB"


def test_nothing_listening_closes_promptly_and_the_session_goes_on(
    cluster: Cluster, bridge_server: str
) -> None:
    with forwarding(cluster, bridge_server, 9) as (local, cli):
        for _ in range(3):
            started = time.monotonic()
            with socket.create_connection(("127.0.0.1", local), timeout=10) as s:
                s.sendall(b"hello?")
                with contextlib.suppress(ConnectionResetError):
                    assert s.recv(100) == b""
            assert time.monotonic() - started < 3, "the local connection closed promptly"
        assert cli.poll() is None, "the forward keeps running"
    assert cli.stderr is not None


def test_raw_session_unknown_stream_refused_port_and_huge_frame(
    relay_server: tuple[Cluster, str],
) -> None:
    """The framing end to end through the host: errors per stream, the session goes on;
    a huge frame ends it with a clear reason (the runner's, or the host's when it
    relays frames)."""
    cluster, task_id = relay_server
    url = f"{cluster.url.replace('http', 'ws', 1)}/api/v1/tasks/{task_id}/forward"
    headers = {"Authorization": f"Bearer {cluster.token}"}
    with ws_connect(url, additional_headers=headers, max_size=None, compression=None) as ws:
        ready = proto.decode(ws.recv(timeout=10))
        assert ready.type is proto.FrameType.READY and ready.params()["address"]

        def next_frame(stream: int) -> proto.Frame:
            while True:
                frame = proto.decode(ws.recv(timeout=10))
                if frame.stream == stream and frame.type is not proto.FrameType.WINDOW:
                    return frame

        ws.send(proto.data_frame(77, b"nobody"))
        assert next_frame(77).message() == "unknown stream id 77"
        ws.send(proto.open_frame(1, {"port": 9}).encode())
        assert "connection refused" in next_frame(1).message()
        ws.send(proto.open_frame(3, {"port": 8765}).encode())
        ws.send(proto.data_frame(3, b"GET /small HTTP/1.0\r\n\r\n"))
        ws.send(proto.eof_frame(3).encode())
        reply = b""
        while (frame := next_frame(3)).type is proto.FrameType.DATA:
            reply += frame.payload
        assert frame.type is proto.FrameType.EOF and reply.endswith(b"\r\n\r\nhello\n")
        ws.send(proto.data_frame(5, b"x" * (proto.MAX_PAYLOAD + 1)))
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    assert f"exceeds the limit of {proto.MAX_FRAME}" in closed.value.rcvd.reason


def test_task_end_stops_the_forward_with_a_message(cluster: Cluster) -> None:
    task_id = start(cluster, "exec sleep 300", "bridge")
    with forwarding(cluster, task_id, 80) as (_, cli):
        with cluster.client() as c:
            c.act(task_id, TaskAction.KILL)
        assert cli.wait(30) == 1
        assert cli.stderr is not None
        assert f"task {task_id}" in cli.stderr.read().decode()


def read_all(sock: socket.socket, timeout: float = 30) -> bytes:
    sock.settimeout(timeout)
    parts = []
    while chunk := sock.recv(65536):
        parts.append(chunk)
    return b"".join(parts)


def test_a_tunnel_carries_one_connection_raw(relay_server: tuple[Cluster, str]) -> None:
    """``?tunnel=PORT``: after READY the socket is the container port's connection
    (what ``kawa ssh`` hands to ssh). Only a host that splices carries tunnels; one that
    relays frames refuses with 4501, so the client falls back to a session."""
    cluster, task_id = relay_server
    relay_mode = "frames" if cluster.extra_host_env.get("KAWA_HOST_STREAM_RELAY") else "splice"
    if relay_mode == "frames":
        with pytest.raises(TunnelUnavailable, match="relays frames"):
            open_tunnel(cluster.url, cluster.token, task_id, 8765)
        return
    with open_tunnel(cluster.url, cluster.token, task_id, 8765) as sock:
        sock.sendall(b"GET /small HTTP/1.0\r\n\r\n")
        assert read_all(sock).endswith(b"\r\n\r\nhello\n")


def test_tunnel_refusals_say_why(cluster: Cluster, bridge_server: str) -> None:
    with pytest.raises(KawaError, match=f"nothing listens on port 9 of task {bridge_server}"):
        open_tunnel(cluster.url, cluster.token, bridge_server, 9)
    with pytest.raises(KawaError, match=r"port number 1\.\.65535"):
        open_tunnel(cluster.url, cluster.token, bridge_server, 0)
    with pytest.raises(KawaError, match=r"not found|no task"):
        open_tunnel(cluster.url, cluster.token, "123456789", 22)
    with pytest.raises(KawaError):
        open_tunnel(cluster.url, "not-a-token", bridge_server, 8765)


def test_a_tunnel_ends_with_its_task(cluster: Cluster) -> None:
    task_id = start(cluster, "exec python3 -m http.server 8000", "bridge")
    sock = eventually(
        lambda: _try_tunnel(cluster, task_id, 8000), timeout=30, what="the server listening"
    )
    with sock:
        with cluster.client() as c:
            c.act(task_id, TaskAction.KILL)
        started = time.monotonic()
        assert read_all(sock, timeout=20) == b""
        assert time.monotonic() - started < 15, "the tunnel closed with the task"


def _try_tunnel(cluster: Cluster, task_id: str, port: int) -> socket.socket | None:
    try:
        return open_tunnel(cluster.url, cluster.token, task_id, port)
    except KawaError as exc:
        if "connection refused" in exc.message:
            return None
        raise
