"""Throughput: N one-core `echo` tasks submitted at once to a 2-core node.

All must be accepted (queued, none refused) and complete. Compared with N bare
`docker run --rm` of the same image and flags at the same parallelism (2) in the
same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from harness import IMAGE, kawa_up

from kawa.client.async_client import AsyncKawaClient
from kawa.protocol.tasks import TaskSpec, TaskView

PARALLEL = 2


def hops(tasks: list[TaskView]) -> str:
    """Median per-slot hops from the tasks' state histories (milliseconds): the wait
    from the last completion to the next placement, placed -> running, running -> ended."""
    placed, running, ended = [], [], []
    for t in tasks:
        at = {h.target.value: h.at.timestamp() for h in t.history}
        end = at.get(t.state.value)
        if "assigning" in at and "running" in at and end is not None:
            placed.append(at["assigning"])
            running.append(at["running"] - at["assigning"])
            ended.append(end - at["running"])
    if not placed:
        return "hops: no task histories"
    ends = sorted(p + r + e for p, r, e in zip(placed, running, ended, strict=True))
    gaps = []
    for p in sorted(placed)[PARALLEL:]:  # the first placements wait for no slot
        before = [e for e in ends if e <= p]
        if before:
            gaps.append(p - before[-1])

    def ms(xs: list[float]) -> str:
        return f"{statistics.median(xs) * 1000:6.1f}ms" if xs else "     -"

    return (f"hops (median): completed -> next placed {ms(gaps)}, "
            f"placed -> running {ms(running)}, running -> ended {ms(ended)}")


async def kawa_run(url: str, token: str, n: int) -> tuple[float, int, dict[str, int], str]:
    async with AsyncKawaClient(url, token, timeout=120) as client:
        spec = TaskSpec(command=["echo", "hi"], cores=1)
        start = time.perf_counter()
        results = await asyncio.gather(*(client.submit(spec) for _ in range(n)),
                                       return_exceptions=True)
        refused = sum(isinstance(r, Exception) for r in results)
        ids = [t.id for r in results if not isinstance(r, BaseException) for t in r.tasks]
        final = await client.wait(ids, timeout=900)
        elapsed = time.perf_counter() - start
        detailed = [await client.task(t.id) for t in final]
    states: dict[str, int] = {}
    for t in final:
        states[t.state.value] = states.get(t.state.value, 0) + 1
    return elapsed, refused, states, hops(detailed)


def bare_run(n: int, shared: str, local: str) -> float:
    cmd = ["docker", "run", "--rm", "--network", "host", "--cpus", "1",
           "-v", f"{shared}:/shared", "-v", f"{local}:/local_temp", IMAGE, "echo", "hi"]
    start = time.perf_counter()
    with ThreadPoolExecutor(PARALLEL) as pool:
        for r in pool.map(lambda _: subprocess.run(cmd, capture_output=True), range(n)):
            r.check_returncode()
    return time.perf_counter() - start


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=1,
                        help="bare then Kawa this many times, alternating (the machine's "
                             "speed drifts: the ratio is of the totals)")
    args = parser.parse_args()
    bare = kawa = 0.0
    with kawa_up(cores=PARALLEL) as cluster:
        shared, local = cluster.runner_dirs()
        for r in range(1, args.rounds + 1):
            print(f"round {r}, load average before: {load()}")
            b = bare_run(args.tasks, str(shared), str(local))
            k, refused, states, breakdown = asyncio.run(
                kawa_run(cluster.url, cluster.token, args.tasks))
            bare, kawa = bare + b, kawa + k
            print(f"  bare docker run --rm x{args.tasks} (parallel {PARALLEL}): {b:6.1f}s "
                  f"{args.tasks / b:6.2f} tasks/s")
            print(f"  kawa {args.tasks} tasks on a {PARALLEL}-core node:       {k:6.1f}s "
                  f"{args.tasks / k:6.2f} tasks/s  refused={refused} states={states}")
            print(f"  {breakdown}")
            print(f"  ratio (kawa/bare tasks per second): {b / k:.3f}x")
    print(f"ratio over {args.rounds} round(s) (kawa/bare tasks per second): {bare / kawa:.3f}x")
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()
