"""Liveness with the default ``heartbeat_interval`` and ``node_timeout``: how long a
silent runner takes to be seen (its task ``lost``) and how fast its task is ``running``
again once the runner is back.

A host and a runner run as separate processes (the test suite's cluster helper) with
the product's default timing. Each round:

- freeze: SIGSTOP the runner while a task runs in it (alive but silent, as a hung
  node) until the task is ``lost``; then SIGCONT. Prints SIGSTOP → ``lost`` and
  SIGCONT → ``running``.
- restart: SIGKILL the runner, wait for ``lost``, start it again. Prints SIGKILL →
  ``lost``, and registration (node ``online``) → task ``running``.

States are polled through the API every 50 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' cluster helper

from harness import IMAGE
from tests.integration.cluster import Cluster

from kawa.protocol.tasks import TaskSpec
from kawa.settings import HostConfig

POLL = 0.05


def seconds_until(check: Callable[[], bool], limit: float, what: str) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > limit:
            raise SystemExit(f"not {what} after {limit}s")
        time.sleep(POLL)
    return time.monotonic() - start


def show(name: str, samples: list[float]) -> None:
    print(
        f"{name:<34} n={len(samples)} min={min(samples):6.2f}s "
        f"median={statistics.median(samples):6.2f}s max={max(samples):6.2f}s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    defaults = HostConfig()
    print(
        f"defaults: heartbeat_interval={defaults.heartbeat_interval:g}s "
        f"node_timeout={defaults.node_timeout:g}s"
    )
    figures: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="kawa-liveness-") as root:
        cluster = Cluster(
            Path(root), IMAGE, heartbeat_interval=None, node_timeout=None, gateway_port=0
        )
        try:
            cluster.start_host()
            cluster.add_runner("solo")
            with cluster.client() as client:
                [task] = client.submit(TaskSpec(command=["sleep", "3600"])).tasks

                def state_is(state: str) -> Callable[[], bool]:
                    return lambda: client.task(task.id).state.value == state

                seconds_until(state_is("running"), 60, "running")
                for n in range(args.rounds):
                    time.sleep(0.7 * n)  # start at another point of the heartbeat cycle
                    cluster.freeze_runner("solo")
                    try:
                        lost = seconds_until(state_is("lost"), 120, "lost")
                    finally:
                        cluster.thaw_runner("solo")
                    back = seconds_until(state_is("running"), 120, "running again")
                    figures.setdefault("freeze: SIGSTOP -> lost", []).append(lost)
                    figures.setdefault("freeze: SIGCONT -> running", []).append(back)
                    print(f"freeze  {n + 1}: SIGSTOP->lost {lost:6.2f}s", end="")
                    print(f"  SIGCONT->running {back:5.2f}s")

                    time.sleep(0.7 * n)
                    cluster.stop_runner("solo")  # SIGKILL
                    lost = seconds_until(state_is("lost"), 120, "lost")
                    cluster.start_runner("solo", wait=False)
                    online = seconds_until(
                        lambda: cluster.node_status("solo") == "online", 120, "online"
                    )
                    back = seconds_until(state_is("running"), 120, "running again")
                    figures.setdefault("restart: SIGKILL -> lost", []).append(lost)
                    figures.setdefault("restart: online -> running", []).append(back)
                    print(
                        f"restart {n + 1}: SIGKILL->lost {lost:6.2f}s  start->online {online:5.2f}s"
                        f"  online->running {back:5.2f}s"
                    )
        finally:
            cluster.close()
    for name, samples in figures.items():
        show(name, samples)


if __name__ == "__main__":
    main()
