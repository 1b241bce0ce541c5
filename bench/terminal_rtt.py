"""Terminal keystroke round trip: ``kawa connect`` (client → host → runner → docker exec)
against ``docker exec -it`` on the runner's machine, measured in the same run.

Both run ``stty raw -echo; cat`` in the same container behind a pseudo-terminal driven
by pexpect, so every byte typed comes back exactly once; a sample is the time from
writing one byte to reading it back. Prints p50/p99 and the ratio.

    .venv/bin/python bench/terminal_rtt.py [--samples 500]
"""

from __future__ import annotations

import argparse
import os
import select
import statistics
import sys
import termios
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.harness import KAWA, kawa_up

REMOTE = "stty raw -echo; exec cat"


def round_trip(fd: int) -> float:
    started = time.perf_counter()
    os.write(fd, b"k")
    while True:
        if not select.select([fd], [], [], 5)[0]:
            raise SystemExit("no echo within 5 s")
        if b"k" in os.read(fd, 1024):
            return time.perf_counter() - started


def ready(fd: int) -> None:
    """Wait until the client has put its terminal in raw mode (until then the local
    terminal echoes what is typed: no answer from the far end) and the remote cat
    answers (raw mode set there, process started)."""
    deadline = time.monotonic() + 30
    while termios.tcgetattr(fd)[3] & termios.ECHO:
        if time.monotonic() > deadline:
            raise SystemExit("the client did not put its terminal in raw mode")
        time.sleep(0.05)
    while time.monotonic() < deadline:
        os.write(fd, b"r")
        if select.select([fd], [], [], 0.2)[0] and b"r" in os.read(fd, 1024):
            time.sleep(0.2)
            while select.select([fd], [], [], 0.1)[0]:
                os.read(fd, 4096)  # drop the rest of the warm-up echoes
            return
    raise SystemExit("the remote terminal did not answer")


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=500)
    args = parser.parse_args()
    import docker
    import pexpect

    from kawa.client import KawaClient
    from kawa.protocol.tasks import TaskSpec

    with kawa_up() as cluster:
        with KawaClient(cluster.url, cluster.token) as client:
            [task] = client.submit(TaskSpec(command=["sleep", "900"])).tasks
            while client.task(task.id).state != "running":
                time.sleep(0.1)
        [container] = docker.from_env().containers.list(filters={"label": f"kawa.task={task.id}"})
        env = {**cluster.env, "KAWA_CLIENT_URL": cluster.url, "KAWA_CLIENT_TOKEN": cluster.token}
        kawa = pexpect.spawn(KAWA[0], [*KAWA[1:], "connect", task.id, "--command", REMOTE], env=env)
        bare = pexpect.spawn("docker", ["exec", "-it", container.id, "sh", "-c", REMOTE])
        try:
            for child in (kawa, bare):
                ready(child.child_fd)
            samples: dict[str, list[float]] = {"kawa connect": [], "docker exec -it": []}
            for i in range(args.samples):  # interleaved, so both see the same machine
                samples["kawa connect"].append(round_trip(kawa.child_fd))
                samples["docker exec -it"].append(round_trip(bare.child_fd))
                if i % 50 == 49:
                    time.sleep(0.05)
        finally:
            for child in (kawa, bare):
                child.close(force=True)
    print()
    for name, values in samples.items():
        print(
            f"{name:<16} n={len(values)}  p50={statistics.median(values) * 1000:6.2f} ms  "
            f"p99={percentile(values, 0.99) * 1000:6.2f} ms  max={max(values) * 1000:6.2f} ms"
        )
    k, d = samples["kawa connect"], samples["docker exec -it"]
    print(
        f"ratio kawa/docker: p50 {statistics.median(k) / statistics.median(d):.2f}x, "
        f"p99 {percentile(k, 0.99) / percentile(d, 0.99):.2f}x"
    )


if __name__ == "__main__":
    main()
