"""A throwaway `kawa up` cluster for benchmarks, and small statistics helpers."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

IMAGE = os.environ.get("KAWA_BENCH_IMAGE", "kawa/base:bookworm")
KAWA = [sys.executable, "-m", "kawa.cli.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class BenchCluster:
    url: str
    token: str
    data: Path
    env: dict[str, str]
    cluster_id: str
    root: Path
    """The throwaway directory (data, logs, client config; removed at the end)."""

    def runner_dirs(self) -> tuple[Path, Path]:
        """The runner's (shared_data, local_temp) dirs: the bare baseline mounts them too."""
        runners = next((self.data / "runners").iterdir())
        return runners / "shared_data", runners / "local_temp"


@contextmanager
def kawa_up(
    cores: int | None = None,
    shared_dir: bool = False,
    ssh_port: int | None = None,
    home: bool = False,
) -> Iterator[BenchCluster]:
    """``kawa up`` in a throwaway directory (gateway on ``ssh_port`` if given; with
    ``home``, a private $HOME so the user's ~/.ssh is neither read nor written); every
    container of the cluster is removed at the end."""
    # as an installed package: byte-compiled, whatever PYTHONDONTWRITEBYTECODE says
    package = Path(__file__).resolve().parent.parent / "src" / "kawa"
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)
    root = Path(tempfile.mkdtemp(prefix="kawa-bench-"))
    port, runner_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAWA_")}
    env["KAWA_CONFIG"] = str(root / "client.toml")
    if home:
        (root / "home").mkdir()
        env["HOME"] = str(root / "home")
    extra = ["--ssh-port", str(ssh_port)] if ssh_port is not None else []
    if cores:
        env["KAWA_RUNNER_CORES"] = str(cores)
    if shared_dir:  # host and runner see one directory, as over NFS
        env["KAWA_HOST_SHARED_DIR"] = env["KAWA_RUNNER_SHARED_DIR"] = str(root / "shared")
    log = (root / "up.log").open("wb")
    cluster_id = ""
    proc = subprocess.Popen(
        [*KAWA, "up", "--data-dir", str(root / "data"), "--port", str(port),
         "--runner-port", str(runner_port), "--name", "bench", "--image", IMAGE, *extra],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while b"Kawa is up." not in (root / "up.log").read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit((root / "up.log").read_text())
            time.sleep(0.05)
        token = (root / "data" / "admin-token").read_text().strip()
        import httpx

        cluster_id = httpx.get(f"http://127.0.0.1:{port}/api/v1/health").json()["cluster_id"]
        yield BenchCluster(f"http://127.0.0.1:{port}", token, root / "data", env, cluster_id, root)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        if cluster_id:  # a stopped runner leaves its containers (to adopt them): remove them
            remove_containers(cluster_id)
        shutil.rmtree(root, ignore_errors=True)


def remove_containers(cluster_id: str) -> None:
    """Remove every container of one throwaway cluster (by its ``kawa.cluster`` label)."""
    found = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=kawa.cluster={cluster_id}"],
        capture_output=True, text=True, timeout=60,
    ).stdout.split()
    if found:
        subprocess.run(["docker", "rm", "-f", *found], capture_output=True, timeout=120)


def summary(name: str, samples: list[float], baseline: float | None = None) -> str:
    med = statistics.median(samples)
    text = (f"{name:<34} n={len(samples):<4} min={min(samples) * 1000:7.1f}ms "
            f"median={med * 1000:7.1f}ms max={max(samples) * 1000:7.1f}ms")
    if baseline:
        text += f"  ratio={med / baseline:.3f}x"
    return text
