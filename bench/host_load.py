"""The host under load, with many tasks pending (one sweep on a drained node), over HTTP
on loopback against ``kawa up``:

1. kill requests, one at a time, to the answer and to the task's event on the event
   WebSocket, while the scheduler gives the new tasks their waiting reasons;
2. 20 clients listing 200 tasks each, back to back, for ``--seconds``; meanwhile
   ``/api/v1/health`` (no database) every 20 ms: how long the loop keeps callers waiting;
3. a burst of ``--burst`` concurrent submissions from ten typed async clients, sent at
   once: how long until all are stored, what the host answered (201, or 429 that the
   clients send again), and how many were stored.

    .venv/bin/python bench/host_load.py [--tasks 10000] [--kills 100] [--seconds 8] [--burst 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from harness import kawa_up
from websockets.sync.client import connect

from kawa.client.async_client import AsyncKawaClient
from kawa.protocol.tasks import TaskSpec

CLIENTS = 10
LISTERS = 20


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def line(name: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (f"{name:<34} n={len(ms):<5} p50={pct(ms, 0.5):7.1f}ms p99={pct(ms, 0.99):7.1f}ms "
            f"max={max(ms):7.1f}ms")


def kills(url: str, token: str, api: httpx.Client, ids: list[str]) -> None:
    killed: dict[str, float] = {}
    ws = connect(url.replace("http", "ws", 1) + f"/api/v1/events?token={token}", max_size=None)

    def read() -> None:
        try:
            for message in ws:
                task = json.loads(message).get("task")
                if task and task["state"] == "killed":
                    killed.setdefault(task["id"], time.perf_counter())
        except Exception:  # the socket closed: the run is over
            return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    answered, told = [], []
    for task_id in ids:
        sent = time.perf_counter()
        api.post(f"/tasks/{task_id}/kill").raise_for_status()
        answered.append(time.perf_counter() - sent)
        deadline = time.monotonic() + 10
        while task_id not in killed and time.monotonic() < deadline:
            time.sleep(0.001)
        told.append(killed.get(task_id, float("inf")) - sent)
        time.sleep(0.05)
    ws.close()
    print(line("kill request -> answer", answered))
    print(line("kill request -> event on the socket", told))


def listing(api: httpx.Client, headers: dict[str, str], seconds: float) -> None:
    lists: list[float] = []
    health: list[float] = []
    stop = time.monotonic() + seconds

    def lister() -> None:
        with httpx.Client(base_url=str(api.base_url), headers=headers, timeout=60) as http:
            while time.monotonic() < stop:
                sent = time.perf_counter()
                http.get("/tasks", params={"limit": 200}).raise_for_status()
                lists.append(time.perf_counter() - sent)

    with ThreadPoolExecutor(LISTERS) as pool:
        running = [pool.submit(lister) for _ in range(LISTERS)]
        while time.monotonic() < stop:
            sent = time.perf_counter()
            api.get("/health").raise_for_status()
            health.append(time.perf_counter() - sent)
            time.sleep(0.02)
        for r in running:
            r.result()
    print(line(f"list 200 tasks ({LISTERS} clients)", lists))
    print(line("health meanwhile", health))


async def burst(url: str, token: str, n: int) -> tuple[float, Counter[int], int]:
    statuses: Counter[int] = Counter()

    async def seen(response: httpx.Response) -> None:
        statuses[response.status_code] += 1

    clients = []
    for _ in range(CLIENTS):
        try:
            client = AsyncKawaClient(url, token, timeout=120, max_connections=n)
        except TypeError:  # a client without the argument (an older tree)
            client = AsyncKawaClient(url, token, timeout=120)
        client._http.event_hooks["response"].append(seen)
        clients.append(client)
    spec = TaskSpec(command=["true"], name="burst")
    started = time.perf_counter()
    made: list[Any] = await asyncio.gather(
        *(clients[k % CLIENTS].submit(spec) for k in range(n)), return_exceptions=True
    )
    took = time.perf_counter() - started
    for client in clients:
        await client.aclose()
    return took, statuses, sum(isinstance(m, BaseException) for m in made)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--burst", type=int, default=500)
    opts = parser.parse_args()
    with kawa_up() as cluster:
        headers = {"Authorization": f"Bearer {cluster.token}"}
        api = httpx.Client(base_url=f"{cluster.url}/api/v1", headers=headers, timeout=120)
        api.post("/nodes/bench/drain").raise_for_status()
        started = time.perf_counter()
        made = api.post(
            "/tasks", json={"command": ["echo", f"span:{{1..{opts.tasks}}}"], "sweep": True}
        )
        made.raise_for_status()
        print(f"{opts.tasks} tasks submitted in {time.perf_counter() - started:.2f}s (pending)")
        ids = [t["id"] for t in made.json()["tasks"]]
        kills(cluster.url, cluster.token, api, ids[-opts.kills:])
        listing(api, headers, opts.seconds)
        before = api.get("/tasks/counts").json()["total"]
        took, statuses, failed = asyncio.run(burst(cluster.url, cluster.token, opts.burst))
        stored = api.get("/tasks/counts").json()["total"] - before
        print(f"{opts.burst} concurrent submissions: all answered in {took:.2f}s, "
              f"{stored} stored, {failed} failed; host answered {dict(sorted(statuses.items()))}")


if __name__ == "__main__":
    main()
