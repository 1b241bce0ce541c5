"""Port-forwarding throughput: kawa forward vs raw TCP vs ``ssh -L``, same container.

A bridge-network task runs a byte source (each connection asks for N bytes and gets
them) and an sshd. Measured in one run: one stream of ``--size-mb`` and ``--parallel``
streams sharing the same total, straight to the container's IP (raw TCP), through
``kawa forward`` (client → host → runner → container), and through ``ssh -L``.
Fairness is the slowest stream's rate over the mean rate. Prints figures and ratios.

    .venv/bin/python bench/forward.py [--size-mb 1024] [--parallel 16] [--rounds 3] [--split]

Each round measures every path once, in turn; the figures are medians over the rounds,
and each ratio is the median of the per-round ratios (printed too). The raw loopback
path is the same byte source run as a local process on 127.0.0.1.

``--split`` runs the host and the runner as separate processes (as on two machines)
instead of ``kawa up``'s one process.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.harness import IMAGE, KAWA, free_port, kawa_up

PORT, SSH_PORT = 9000, 2222
SOURCE_AT = """
import socket, threading
block = memoryview(bytes(1 << 20))
srv = socket.create_server(("{bind}", {port}), backlog=256)
def serve(c):
    with c:
        n = int(c.recv(64).split(b"\\n")[0])
        while n > 0:
            k = min(n, len(block)); c.sendall(block[:k]); n -= k
while True:
    c, _ = srv.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
"""
SOURCE = SOURCE_AT.format(bind="0.0.0.0", port=PORT)


@contextlib.contextmanager
def loopback_source() -> Iterator[int]:
    """The same byte source as a local process on 127.0.0.1 (raw loopback TCP)."""
    port = free_port()
    proc = subprocess.Popen(["python3", "-c", SOURCE_AT.format(bind="127.0.0.1", port=port)])
    try:
        wait_port("127.0.0.1", port)
        yield port
    finally:
        proc.kill()
        proc.wait(15)


def pull(host: str, port: int, size: int) -> float:
    """Ask for ``size`` bytes and read them all; seconds taken."""
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    started = time.perf_counter()
    with socket.create_connection((host, port), timeout=120) as s:
        s.sendall(f"{size}\n".encode())
        got = 0
        while got < size:
            n = s.recv_into(view)
            if not n:
                raise RuntimeError(f"stream ended after {got} of {size} bytes")
            got += n
    return time.perf_counter() - started


def parallel(host: str, port: int, total: int, streams: int) -> tuple[float, list[float]]:
    """``streams`` concurrent pulls sharing ``total``: (wall seconds, per-stream rates)."""
    each = total // streams
    times: list[float] = [0.0] * streams

    def one(i: int) -> None:
        times[i] = pull(host, port, each)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(streams)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, [each / t for t in times]


def wait_port(host: str, port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return
        time.sleep(0.1)
    raise SystemExit(f"nothing answers on {host}:{port}")


@contextlib.contextmanager
def cluster(split: bool) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(url, token, env) of a throwaway cluster."""
    if not split:
        with kawa_up() as c:
            yield c.url, c.token, c.env
        return
    from tests.integration.cluster import Cluster

    c = Cluster(Path(tempfile.mkdtemp(prefix="kawa-bench-")), IMAGE)
    try:
        c.start_host()
        c.add_runner("bench")
        yield c.url, c.token, c._env()
    finally:
        c.close()


@contextlib.contextmanager
def kawa_forward(env: dict[str, str], task: str) -> Iterator[int]:
    proc = subprocess.Popen(
        [*KAWA, "forward", task, str(PORT), "--local-port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    try:
        line = b""
        while not line.endswith(b"\n"):
            if proc.poll() is not None:
                raise SystemExit("kawa forward exited")
            if select.select([proc.stdout], [], [], 1)[0]:
                line += os.read(proc.stdout.fileno(), 1)
        yield int(line.split()[2].rsplit(b":", 1)[1])
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
        proc.stdout.close()


@contextlib.contextmanager
def ssh_forward(key: Path, ip: str) -> Iterator[int]:
    local = free_port()
    proc = subprocess.Popen(
        [
            "ssh",
            "-N",
            "-i",
            str(key),
            "-p",
            str(SSH_PORT),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-L",
            f"{local}:127.0.0.1:{PORT}",
            f"root@{ip}",
        ],
    )
    try:
        wait_port("127.0.0.1", local)
        pull("127.0.0.1", local, 1)  # the tunnel is up end to end
        yield local
    finally:
        proc.terminate()
        proc.wait(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--parallel", type=int, default=16)
    parser.add_argument("--split", action="store_true", help="host and runner in two processes")
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each path")
    args = parser.parse_args()
    size = args.size_mb * 1024 * 1024
    keydir = Path(tempfile.mkdtemp(prefix="kawa-bench-ssh-"))
    key = keydir / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    pub = (keydir / "id.pub").read_text().strip()
    try:
        run(args, size, key, pub)
    finally:
        shutil.rmtree(keydir, ignore_errors=True)


def run(args: argparse.Namespace, size: int, key: Path, pub: str) -> None:
    import docker

    from kawa.client import KawaClient
    from kawa.protocol.tasks import TaskSpec

    setup = (
        f"mkdir -p /run/sshd /root/.ssh && chmod 700 /root/.ssh && echo '{pub}' >"
        " /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys && ssh-keygen -A"
        f" >/dev/null && (/usr/sbin/sshd -D -p {SSH_PORT} &) && exec python3 -c '{SOURCE}'"
    )
    with cluster(args.split) as (url, token, env):
        env = {**env, "KAWA_CLIENT_URL": url, "KAWA_CLIENT_TOKEN": token}
        with KawaClient(url, token) as client:
            [task] = client.submit(
                TaskSpec(command=["sh", "-c", setup], network="bridge", cores=2)  # type: ignore[arg-type]
            ).tasks
            deadline = time.monotonic() + 60
            while client.task(task.id).state != "running" and time.monotonic() < deadline:
                time.sleep(0.1)
        [container] = docker.from_env().containers.list(filters={"label": f"kawa.task={task.id}"})
        ip = container.attrs["NetworkSettings"]["IPAddress"]
        wait_port(ip, PORT)
        wait_port(ip, SSH_PORT)
        paths = {
            "raw loopback TCP": loopback_source,
            "raw TCP to the container": lambda: contextlib.nullcontext(PORT),
            "kawa forward": lambda: kawa_forward(env, task.id),
            "ssh -L": lambda: ssh_forward(key, ip),
        }
        ones: dict[str, list[float]] = {name: [] for name in paths}
        manys: dict[str, list[float]] = {name: [] for name in paths}
        fairs: dict[str, list[float]] = {name: [] for name in paths}
        with contextlib.ExitStack() as stack:
            ports = {name: stack.enter_context(open_path()) for name, open_path in paths.items()}
            where = {n: ip if n == "raw TCP to the container" else "127.0.0.1" for n in paths}
            for name, port in ports.items():
                pull(where[name], port, 1 << 20)  # warm up
            for _ in range(args.rounds):  # the paths take turns, so load hits them alike
                for name, port in ports.items():
                    ones[name].append(size / pull(where[name], port, size))
                    wall, rates = parallel(where[name], port, size, args.parallel)
                    manys[name].append(size / wall)
                    fairs[name].append(min(rates) / statistics.mean(rates))
        med = statistics.median
        print(f"\n{args.rounds} round(s), medians")
        print(f"{'path':<26} {'1 stream':>11} {args.parallel:>3} streams  fairness")
        for name in paths:
            print(
                f"{name:<26} {med(ones[name]) / 1e6:8.0f} MB/s "
                f"{med(manys[name]) / 1e6:8.0f} MB/s  {med(fairs[name]):8.2f}"
            )

        def ratios(kind: dict[str, list[float]], base: str) -> str:
            each = [k / b for k, b in zip(kind["kawa forward"], kind[base], strict=True)]
            return f"{med(each):.3f}x (rounds: {', '.join(f'{r:.3f}' for r in each)})"

        for label, base in (
            ("loopback", "raw loopback TCP"),
            ("container", "raw TCP to the container"),
            ("ssh -L", "ssh -L"),
        ):
            print(f"\nkawa/{label}: 1 stream {ratios(ones, base)}")
            print(f"kawa/{label}: {args.parallel} streams {ratios(manys, base)}")
        print(
            "\nfairness (slowest/mean, median) "
            + ", ".join(f"{n} {med(fairs[n]):.2f}" for n in paths)
        )


if __name__ == "__main__":
    main()
