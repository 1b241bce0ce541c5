"""The dashboard under load, measured in headless Chromium on loopback against ``kawa up``:

1. the task list's time to interactive with 10,000 tasks stored (one sweep submission
   on a drained node, so they stay pending): navigation to the event stream live and a
   full page of rows, then a search typed to the filtered table;
2. event to screen: a pending task killed by a request made in the page, to the moment
   its row leaves the list of pending tasks (a MutationObserver's time; only the event
   stream can change the row), from the request sent and from its answer received;
3. web terminal keystroke round trip: a key's keydown in the page to its echo in
   xterm's rows, with ``stty raw -echo; exec cat`` in a running task; the baseline is a
   key on the same page sent to a bare WebSocket echo server on loopback (the
   ``websockets`` library, in this process) and back; and the same echo sent from a
   timer, with no key, for what the socket costs when no input is being handled.

    .venv/bin/python bench/dashboard_live.py [--runs 10] [--events 100] [--keys 300]

Needs the built dashboard (src/kawa/web/dist), web/node_modules and /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from harness import kawa_up  # noqa: E402

WEB = ROOT / "web"
TASKS = 10_000  # default of --tasks
NODE = "bench"


def browser(name: str, **args: Any) -> Any:
    done = subprocess.run(
        ["node", str(WEB / "tests" / "browser" / "scenarios.mjs"), name],
        cwd=WEB,
        env={**os.environ, "KAWA_BROWSER": json.dumps(args)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        sys.exit(f"browser run {name} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@contextmanager
def echo_server() -> Iterator[str]:
    """A bare WebSocket echo server on 127.0.0.1 in a thread; its ws:// URL."""
    from websockets.sync.server import ServerConnection, serve

    def echo(ws: ServerConnection) -> None:
        for message in ws:
            ws.send(message)

    with serve(echo, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}/"
        finally:
            server.shutdown()
            thread.join(10)


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def line(name: str, ms: list[float]) -> str:
    return (
        f"{name:<38} n={len(ms):<4} p50={pct(ms, 0.5):7.1f}ms p99={pct(ms, 0.99):7.1f}ms "
        f"max={max(ms):7.1f}ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--keys", type=int, default=300)
    parser.add_argument("--tasks", type=int, default=TASKS)
    parser.add_argument("--skip-tasks-page", action="store_true")
    opts = parser.parse_args()
    with kawa_up() as cluster, tempfile.TemporaryDirectory() as shots:
        api = httpx.Client(
            base_url=f"{cluster.url}/api/v1",
            headers={"Authorization": f"Bearer {cluster.token}"},
            timeout=120,
        )
        base = {"url": cluster.url, "token": cluster.token, "shots": shots}
        # the shell for part 3 first, while the node takes work
        shell = api.post("/tasks", json={"command": ["sleep", "3600"], "name": "bench-shell"})
        shell.raise_for_status()
        shell_id = shell.json()["tasks"][0]["id"]
        deadline = time.monotonic() + 120
        while api.get(f"/tasks/{shell_id}").json()["state"] != "running":
            if time.monotonic() > deadline:
                sys.exit("the shell task did not start")
            time.sleep(0.2)
        api.post(f"/nodes/{NODE}/drain").raise_for_status()
        started = time.perf_counter()
        made = api.post(
            "/tasks", json={"command": ["echo", f"span:{{1..{opts.tasks}}}"], "sweep": True}
        )
        made.raise_for_status()
        stored = time.perf_counter() - started
        total = api.get("/tasks/counts").json()["total"]
        print(f"{len(made.json()['tasks'])} tasks submitted in {stored:.2f}s; {total} stored")

        if not opts.skip_tasks_page:
            # the task's name: the words of its command ("echo", a number) can also be
            # found in the ids of other tasks the page holds
            find = f"sweep[{opts.tasks - 1}]"
            r = browser("tasks_timing", **base, runs=opts.runs, find=find)
            if find not in r["found"]:
                sys.exit(f"the search found {r['found']!r}")
            print(line(f"tasks page interactive ({total} tasks)", r["tti"]))
            print(f"  each run, in order: {', '.join(f'{v:.0f}' for v in r['tti'])} ms")
            print(line("search typed to filtered table", r["search"]))

        r = browser("event_latency", **base, samples=opts.events)
        print(line("kill request sent -> row updated", r["fromRequest"]))
        answered = [a - b for a, b in zip(r["fromRequest"], r["fromAnswer"], strict=True)]
        print(line("kill request sent -> answer received", answered))
        print(line("kill answer received -> row updated", r["fromAnswer"]))

        with echo_server() as echo:
            r = browser("terminal_keys", **base, task=shell_id, samples=opts.keys, echo=echo)
        print(line("keystroke -> its bytes sent", r["sent"]))
        print(line("keystroke -> echo's bytes on the socket", r["received"]))
        print(line("keystroke -> echo in xterm rows", r["rtt"]))
        print(line("baseline: key -> bare echo server", r["bare"]))
        print(line("baseline: timer -> bare echo (no key)", r["idle"]))
        for q in (0.5, 0.99):
            ratio = pct(r["received"], q) / max(pct(r["bare"], q), 0.001)
            print(f"  ratio kawa/bare at p{int(q * 100)}: {ratio:.2f}x")
        api.post(f"/tasks/{shell_id}/kill")


if __name__ == "__main__":
    main()
