"""Scale: one `kawa host` (SQLite, or PostgreSQL with --postgres) and N hollow runners
(bench/hollow.py: the real runner protocol, simulated tasks) on loopback. Hollow runners
are for benchmarks only; nothing here runs Docker.

    PYTHONPATH=src .venv/bin/python bench/scale.py --nodes 500 --cores 8 --stored 100000
    KAWA_SCALE_PROFILE=/tmp/host.prof ... # cProfile the host: /tmp/host.prof.1, .2, ...

Measured, in order, in one run (every wait has a deadline; nothing leaves 127.0.0.1):

0. ``--stored`` completed tasks are bulk-inserted with SQLAlchemy into the host's database
   before the host starts (rows as a submission writes them, marked completed on a hollow
   node, one transition row each); the N hollow nodes register;
1. scheduling throughput: M one-core tasks (default: one per core of the fleet) submitted
   as sweeps; from the first submission, the time until they are placed (none pending)
   and until their hollow runners acknowledged them (none assigning either); they run
   for the rest of the run (their runners' heartbeats list them);
2. node list p50/p99 (GET /api/v1/nodes) under --clients concurrent keep-alive clients,
   and the same for a bare FastAPI/uvicorn app returning the same bytes, in the same run;
3. task list p50/p99 (GET /api/v1/tasks, its default page) the same way;
4. submissions per second while every core is taken (new tasks wait in the queue):
   sweeps of 100, then single submissions, failures counted, with the host's CPU time
   per request;
5. the host's resident memory (at the end, and the peak sampled every 0.5 s).

The latency and submission clients are a minimal HTTP/1.1 keep-alive loop on asyncio
streams (uvloop), so the client's own cost stays small next to the server's
(``--httpx-submissions`` submits with httpx instead, as earlier runs did).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil
import uvloop
from harness import IMAGE, KAWA, free_port

HERE = Path(__file__).resolve().parent
API = "/api/v1"


@dataclass
class Host:
    url: str
    token: str
    secret: str
    proc: subprocess.Popen[bytes]
    root: Path
    profile: str | None = None
    peak_rss: int = 0
    parts: int = 0

    def phase_done(self, name: str) -> None:
        """With a profiled host: write its stats of the phase that just ended."""
        if not self.profile or self.proc.poll() is not None:
            return
        self.parts += 1
        path = Path(f"{self.profile}.{self.parts}")
        self.proc.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + 60
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # let the dump finish
        print(f"  (host profile of {name}: {path})", flush=True)


def store_completed(env: dict[str, str], count: int, nodes: int) -> float:
    """Bulk-insert ``count`` completed one-core tasks (batches of 1,000, spread over the
    hollow nodes' names) into the host's database; seconds taken. On PostgreSQL the
    database is then vacuumed and analysed, as autovacuum keeps a table that grew over
    months: without it the planner takes the tasks table for a few thousand rows."""
    from sqlalchemy import insert

    from kawa.core.ids import IdGenerator
    from kawa.host.app import prepare_database
    from kawa.settings import HostConfig
    from kawa.store.models import Task, TaskTransition

    cfg = HostConfig(data_dir=Path(env["KAWA_HOST_DATA_DIR"]),
                     database_url=env.get("KAWA_HOST_DATABASE_URL"),
                     cluster_secret=env["KAWA_HOST_CLUSTER_SECRET"])
    sessions = prepare_database(cfg)
    ids = IdGenerator(1)  # not the host's worker id: no clash with the ids it mints
    start = time.perf_counter()
    now = datetime.now(UTC)
    for first in range(0, count, 1000):
        batch = ids.next()
        rows: list[dict[str, object]] = [dict(
            id=ids.next(), batch_id=batch, name=None, kind="command", state="completed",
            desired="run", owner="admin", command=["sleep", "0", f"span:{first + k + 1}"],
            target=None, node=f"hollow-{(first + k) % max(1, nodes):04d}", numa=0,
            gpu_ids=[], cpuset=[], cores=1, memory=None, gpus=0, env={}, mounts=[],
            container=None, image=IMAGE, native=False, privileged=False, workdir=None,
            network="host", timeout=None, priority=0, exit_code=0, error=None,
            waiting_reason=None, created_at=now, started_at=now, finished_at=now,
            ssh_key=None, batch_max_parallel=None,
        ) for k in range(min(1000, count - first))]
        with sessions.begin() as s:
            s.execute(insert(Task), rows)
            s.execute(insert(TaskTransition), [
                dict(task_id=r["id"], at=now, source=None, target="pending",
                     event="submitted", cause="inserted by bench/scale.py") for r in rows])
    engine = sessions.kw["bind"]
    if engine.dialect.name == "postgresql":  # what autovacuum does to a table grown over
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")  # time: its planner statistics
    engine.dispose()
    return time.perf_counter() - start


PROFILED = textwrap.dedent("""
    import cProfile, signal, sys
    from kawa.cli.main import run
    prof = cProfile.Profile()
    path, part = sys.argv[1], [0]
    def dump(*_):  # on SIGUSR2, in the main (event loop) thread: this phase's stats
        prof.disable()
        part[0] += 1
        prof.dump_stats(f"{path}.{part[0]}")
        prof.clear()
        prof.enable()
    signal.signal(signal.SIGUSR2, dump)
    sys.argv = ["kawa", "host"]
    prof.enable()
    run()
""")


@contextmanager
def kawa_host(postgres: str | None, heartbeat: float | None, stored: int, nodes: int
              ) -> Iterator[Host]:
    """`kawa host` on 127.0.0.1 in a throwaway directory, with an admin token."""
    root = Path(tempfile.mkdtemp(prefix="kawa-scale-"))
    port, secret = free_port(), secrets.token_urlsafe(24)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAWA_")}
    env.update(KAWA_CONFIG=str(root / "none.toml"), KAWA_HOST_CLUSTER_SECRET=secret,
               KAWA_HOST_DATA_DIR=str(root / "data"), KAWA_HOST_SWEEP_LIMIT="100000",
               KAWA_HOST_BIND="127.0.0.1", KAWA_HOST_PORT=str(port),
               KAWA_HOST_SSH_PORT="0")  # no SSH gateway: not measured here
    if postgres:
        env["KAWA_HOST_DATABASE_URL"] = postgres
    if heartbeat:
        env["KAWA_HOST_HEARTBEAT_INTERVAL"] = str(heartbeat)
    (root / "data").mkdir()
    token = subprocess.run([*KAWA, "init", "token"], env=env, check=True, capture_output=True,
                           text=True).stdout.strip().splitlines()[-1]
    if stored:
        took = store_completed(env, stored, nodes)
        print(f"0. {stored} completed tasks inserted into the database in {took:.1f}s "
              f"({stored / took:.0f} rows/s)", flush=True)
    log = (root / "host.log").open("wb")
    cmd = [*KAWA, "host"]
    profile = os.environ.get("KAWA_SCALE_PROFILE")
    if profile:  # cProfile the host; its stats of each phase go to PROFILE.1, PROFILE.2, …
        cmd = [sys.executable, "-c", PROFILED, profile]
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    host = Host(url, token, secret, proc, root, profile)
    watching = threading.Event()

    def watch_rss() -> None:
        ps = psutil.Process(proc.pid)
        while not watching.wait(0.5):
            try:
                host.peak_rss = max(host.peak_rss, ps.memory_info().rss)
            except psutil.Error:
                return

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + API + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit((root / "host.log").read_text())
            time.sleep(0.1)
        threading.Thread(target=watch_rss, daemon=True).start()
        yield host
    finally:
        watching.set()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
        if os.environ.get("KAWA_SCALE_KEEP"):
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


@contextmanager
def hollow_fleet(host: Host, nodes: int, procs: int, cores: int
                 ) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``nodes`` hollow nodes of ``cores`` cores over ``procs`` processes; returns once
    all registered."""
    running: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    outputs = []
    per = -(-nodes // procs)
    try:
        for k in range(procs):
            count = min(per, nodes - k * per)
            if count <= 0:
                break
            path = host.root / f"hollow-{k}.log"
            logs.append(path)
            outputs.append(path.open("wb"))
            running.append(subprocess.Popen(
                [sys.executable, str(HERE / "hollow.py"), "--host-url", host.url,
                 "--nodes", str(count), "--first", str(k * per), "--port", str(free_port()),
                 "--cores", str(cores)],
                env={**os.environ, "KAWA_HOLLOW_SECRET": host.secret},
                stdout=outputs[-1], stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 60 + nodes * 0.2
        while not all(b"registered" in path.read_bytes() for path in logs):
            if any(r.poll() is not None for r in running) or time.monotonic() > deadline:
                raise SystemExit("\n".join(path.read_text()[-2000:] for path in logs))
            time.sleep(0.1)
        yield running
    finally:
        for r in running:
            r.send_signal(signal.SIGTERM)
        for r in running:
            try:
                r.wait(20)
            except subprocess.TimeoutExpired:
                r.kill()
                r.wait(10)
        for out in outputs:
            out.close()
        for path in logs:  # what went wrong in a hollow process is worth seeing
            warnings = [line for line in path.read_text().splitlines() if "WARNING" in line]
            if warnings:
                print(f"  {path.name}: {len(warnings)} warnings, e.g. {warnings[0][:200]}")


def client(host: Host, timeout: float = 300) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=host.url + API, timeout=timeout,
                             headers={"Authorization": f"Bearer {host.token}"},
                             limits=httpx.Limits(max_connections=64))


async def counts(c: httpx.AsyncClient) -> dict[str, int]:
    r = await c.get("/tasks/counts")
    r.raise_for_status()
    return dict(r.json()["by_state"])


async def submit_batches(c: httpx.AsyncClient, total: int, batch: int, seconds: float,
                         parallel: int = 2) -> int:
    """``total`` tasks as sweeps of at most ``batch`` (``parallel`` requests at a time);
    returns how many requests failed."""
    sizes = [min(batch, total - i) for i in range(0, total, batch)]
    failed = 0
    gate = asyncio.Semaphore(parallel)

    async def one(k: int) -> None:
        nonlocal failed
        body = {"command": ["sleep", f"{seconds:g}", f"span:{{1..{k}}}"], "sweep": True,
                "cores": 1, "image": IMAGE}
        async with gate:
            r = await c.post("/tasks", json=body)
        if r.status_code >= 400:
            failed += 1
            print(f"  submit refused: {r.status_code} {r.text[:200]}")

    await asyncio.gather(*(one(k) for k in sizes))
    return failed


async def wait_counts(c: httpx.AsyncClient, done: object, deadline_s: float
                      ) -> dict[str, int]:
    """Poll the counts until ``done(counts)`` or the deadline; the last counts. Polled
    every 0.1 s at first, less often as the wait grows (a count reads the whole table)."""
    start = time.monotonic()
    while True:
        by = await counts(c)
        waited = time.monotonic() - start
        if done(by) or waited > deadline_s:  # type: ignore[operator]
            return by
        await asyncio.sleep(min(1.0, 0.1 + waited / 50))


def placed_in(by: dict[str, int]) -> int:
    """Tasks placed by these counts: assigning or running."""
    return by.get("assigning", 0) + by.get("running", 0)


def p(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


async def load(url: str, headers: dict[str, str], clients: int, requests: int,
               seconds: float) -> tuple[list[float], int]:
    """``clients`` concurrent keep-alive connections each sending GET ``url`` in a loop,
    ``requests`` in all or until ``seconds`` pass; latencies and errors. A minimal
    HTTP/1.1 client (Content-Length bodies only), so little of each figure is its own."""
    parts = urlsplit(url)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n{head}\r\n"
               ).encode()
    latencies: list[float] = []
    errors = 0
    left = requests
    end = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal left, errors
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            while left > 0 and time.monotonic() < end:
                left -= 1
                t = time.perf_counter()
                writer.write(request)
                status = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":", 1)[1]) for line in status.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - t)
                errors += not status.startswith(b"HTTP/1.1 200")
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies, errors


BARE_APP = textwrap.dedent("""
    import gzip, sys
    from pathlib import Path
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.responses import Response
    body = Path(sys.argv[1]).read_bytes()
    packed = gzip.compress(body, 5, mtime=0)  # compressed once, as the host keeps it
    app = FastAPI()
    @app.get("/page")
    async def page(request: Request) -> Response:
        if "gzip" in request.headers.get("accept-encoding", ""):
            return Response(packed, media_type="application/json",
                            headers={"Content-Encoding": "gzip"})
        return Response(body, media_type="application/json")
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning",
                access_log=False)
""")


async def against_bare(host: Host, path: str, clients: int, requests: int, seconds: float,
                       label: str, encoding: str) -> float:
    """p50/p99 of GET ``path`` on the host and of a bare FastAPI app serving its bytes
    (the same uvicorn the host runs), both asked with ``Accept-Encoding: encoding``
    (gzip, as browsers and httpx ask; the bare app compressed its page once); the
    host's p99 in seconds."""
    headers = {"Authorization": f"Bearer {host.token}"}
    async with httpx.AsyncClient(headers=headers, timeout=60) as c:
        page = (await c.get(host.url + API + path)).content
    (host.root / "page.json").write_bytes(page)
    port = free_port()
    bare = subprocess.Popen([sys.executable, "-c", BARE_APP, str(host.root / "page.json"),
                             str(port)])
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/page", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise SystemExit("the bare app did not start") from None
                time.sleep(0.1)
        asked = {"Accept-Encoding": encoding}
        headers |= asked
        with httpx.stream("GET", host.url + API + path, headers=headers) as r:
            sent = sum(len(chunk) for chunk in r.iter_raw())  # as sent: compressed or not
        await load(host.url + API + path, headers, clients, clients * 5, seconds)  # warm-up
        one, _ = await load(host.url + API + path, headers, 1, 50, seconds)
        one_bare, _ = await load(f"http://127.0.0.1:{port}/page", asked, 1, 50, seconds)
        kawa, kerr = await load(host.url + API + path, headers, clients, requests, seconds)
        base, berr = await load(f"http://127.0.0.1:{port}/page", asked, clients, requests,
                                seconds)
    finally:
        bare.terminate()
        bare.wait(10)
    print(f"{label}: page {len(page) / 1024:.0f} KiB, {sent / 1024:.0f} KiB sent "
          f"({encoding}); one client alone: kawa p50 "
          f"{p(one, .5) * 1000:.1f} ms, bare p50 {p(one_bare, .5) * 1000:.1f} ms; "
          f"then {clients} clients:")
    for name, got, err in (("kawa", kawa, kerr), ("bare", base, berr)):
        print(f"  {name} n={len(got):<5} p50 {p(got, .5) * 1000:7.1f} ms  "
              f"p99 {p(got, .99) * 1000:7.1f} ms  errors {err}")
    print(f"  ratio p99 kawa/bare {p(kawa, .99) / p(base, .99):.1f}x", flush=True)
    return p(kawa, .99)


async def settle_queue(host: Host, deadline_s: float) -> float:
    """Seconds until the newest pending task has a waiting reason (the scheduler gives
    queued tasks theirs in priority and id order, so the newest is the last)."""
    start = time.monotonic()
    async with client(host) as c:
        while time.monotonic() - start < deadline_s:
            r = await c.get("/tasks", params={"state": "pending", "limit": 1})
            r.raise_for_status()
            newest = r.json()
            if not newest or newest[0]["waiting_reason"] != "queued":
                break
            await asyncio.sleep(0.2)
    return time.monotonic() - start


async def submissions(host: Host, clients: int, seconds: float, batch: int,
                      with_httpx: bool = False) -> float:
    """``clients`` concurrent loops submitting ``batch``-task sweeps (or single tasks when
    ``batch`` is 1) for ``seconds``; tasks per second. Each loop is a minimal HTTP/1.1
    keep-alive POST on asyncio streams (as ``load``), or with ``with_httpx`` an httpx
    client, whose own cost per request is several times larger."""
    body: dict[str, object] = (
        {"command": ["sleep", "0", f"span:{{1..{batch}}}"], "sweep": True, "image": IMAGE}
        if batch > 1 else {"command": ["sleep", "0"], "image": IMAGE})
    done = failed = 0
    end = time.monotonic() + seconds

    def answered(status: int, text: str) -> None:
        nonlocal done, failed
        done += status < 400
        failed += status >= 400
        if status >= 400 and failed <= 3:
            print(f"  submit refused: {status} {text[:200]}")

    async def with_streams() -> None:
        parts = urlsplit(host.url)
        payload = json.dumps(body).encode()
        request = (f"POST {API}/tasks HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                   f"Authorization: Bearer {host.token}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            while time.monotonic() < end:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                answer = await reader.readexactly(length)
                answered(int(head[9:12]), answer.decode(errors="replace"))
        finally:
            writer.close()

    async def with_client(c: httpx.AsyncClient) -> None:
        while time.monotonic() < end:
            try:
                r = await c.post("/tasks", json=body)
                answered(r.status_code, r.text)
            except httpx.HTTPError as exc:
                answered(599, repr(exc))

    host_cpu = psutil.Process(host.proc.pid)
    cpu_before = sum(host_cpu.cpu_times()[:2])
    start = time.perf_counter()
    if with_httpx:
        async with client(host, timeout=60) as c:
            await asyncio.gather(*(with_client(c) for _ in range(clients)))
    else:
        await asyncio.gather(*(with_streams() for _ in range(clients)))
    took = time.perf_counter() - start
    cpu = sum(host_cpu.cpu_times()[:2]) - cpu_before
    what = f"sweeps of {batch}" if batch > 1 else "single submissions"
    print(f"  {what}: {done / took:7.1f} requests/s = {done * batch / took:6.0f} tasks/s "
          f"({done} requests in {took:.1f}s, {clients} clients"
          f"{', httpx' if with_httpx else ''}), failed {failed}; host CPU "
          f"{cpu * 1000 / max(1, done):.2f} ms per request", flush=True)
    return done * batch / took


async def scheduling(host: Host, args: argparse.Namespace) -> None:
    """Sweeps of one-core tasks: the time until they are placed and acknowledged."""
    async with client(host) as c:
        slots = args.nodes * args.cores
        print(f"1. scheduling {args.tasks} one-core tasks ({args.task_seconds:g}s each) "
              f"on {args.nodes} nodes of {args.cores} cores ({slots} slots)", flush=True)
        start = time.perf_counter()
        seen: list[tuple[float, int]] = []

        async def first_placements() -> None:  # polled during the submissions too
            by = await wait_counts(c, lambda by: placed_in(by) > 0, args.deadline)
            seen.append((time.perf_counter() - start, placed_in(by)))

        watch = asyncio.create_task(first_placements())
        failed = await submit_batches(c, args.tasks, args.batch, args.task_seconds)
        took = time.perf_counter() - start
        print(f"  submitted in {took:.1f}s ({args.tasks / took:.0f} tasks/s in sweeps of "
              f"{args.batch}), failed requests {failed}", flush=True)
        if failed:
            raise SystemExit(f"{failed} submissions refused")
        want = min(args.tasks, slots)

        def moving(by: dict[str, int]) -> bool:  # some are still on their way
            return bool(by.get("pending", 0) > args.tasks - want or by.get("assigning"))

        # placed: assigning or running; acknowledged: running (the tasks outlast the run;
        # any other state, such as lost, is a failure and is printed)
        by = await wait_counts(
            c, lambda by: by.get("assigning", 0) + by.get("running", 0) >= want
            or not moving(by), args.deadline)
        placed_s = time.perf_counter() - start
        by2 = await wait_counts(c, lambda by: by.get("running", 0) >= want or not moving(by),
                                args.deadline)
        acked_s = time.perf_counter() - start
        placed = by.get("assigning", 0) + by.get("running", 0)
        acked = by2.get("running", 0)
        print(f"  from the first submission: {placed} placed in {placed_s:.1f}s -> "
              f"{placed / placed_s:.0f} placements/s; {acked} acknowledged by their runners "
              f"in {acked_s:.1f}s -> {acked / acked_s:.0f}/s; states {by2}", flush=True)
        await watch
        at, first = seen[0]
        then = (f"then {placed - first} more in {placed_s - at:.1f}s -> "
                f"{(placed - first) / (placed_s - at):.0f} placements/s"
                if placed > first and placed_s > at else "all of them at once")
        print(f"  first placements seen at {at:.1f}s ({first}); {then}", flush=True)
    host.phase_done("scheduling")


async def queued_scheduling(host: Host, args: argparse.Namespace,
                            fleet: list[subprocess.Popen[bytes]]) -> None:
    """``args.queued`` one-core tasks queued while every hollow node is offline (its
    process stopped), then the nodes back at once (the process continued): the time
    until their slots are filled from that queue."""
    async with client(host) as c:
        slots = args.nodes * args.cores

        async def statuses() -> dict[str, int]:
            r = await c.get("/nodes")
            r.raise_for_status()
            found: dict[str, int] = {}
            for n in r.json():
                found[n["status"]] = found.get(n["status"], 0) + 1
            return found

        async def until(done: Callable[[dict[str, int]], bool], what: str) -> None:
            deadline = time.monotonic() + args.deadline
            while not done(seen := await statuses()):
                if time.monotonic() > deadline:
                    raise SystemExit(f"nodes did not {what}: {seen}")
                await asyncio.sleep(0.2)

        for proc in fleet:
            proc.send_signal(signal.SIGSTOP)
        await until(lambda by: by.get("offline", 0) == args.nodes, "go offline")
        print(f"1. scheduling from a queue: {args.queued} one-core tasks queued while the "
              f"{args.nodes} nodes of {args.cores} cores ({slots} slots) are offline",
              flush=True)
        start = time.perf_counter()
        failed = await submit_batches(c, args.queued, args.batch, args.task_seconds)
        took = time.perf_counter() - start
        if failed:
            raise SystemExit(f"{failed} submissions refused")
        by = await wait_counts(c, lambda by: by.get("pending", 0) >= args.queued, args.deadline)
        print(f"  queued in {took:.1f}s ({args.queued / took:.0f} tasks/s); states {by}",
              flush=True)
        want = min(args.queued, slots)
        start = time.perf_counter()
        for proc in fleet:
            proc.send_signal(signal.SIGCONT)
        await until(lambda by: by.get("online", 0) == args.nodes, "come back")
        online_s = time.perf_counter() - start
        by = await wait_counts(c, lambda by: placed_in(by) >= want, args.deadline)
        placed_s = time.perf_counter() - start
        placed = placed_in(by)
        print(f"  every node online {online_s:.1f}s after their process continued; {placed} "
              f"placed after {placed_s:.1f}s -> {placed / placed_s:.0f} placements/s "
              f"({placed / max(1e-9, placed_s - online_s):.0f}/s after the last came back); "
              f"states {by}", flush=True)
    host.phase_done("scheduling from a queue")


async def scenario(host: Host, args: argparse.Namespace,
                   fleet: list[subprocess.Popen[bytes]]) -> None:
    host.phase_done("start and registration")
    if args.queued:
        await queued_scheduling(host, args, fleet)
    else:  # first: the listings then run with these tasks running
        await scheduling(host, args)
    async with client(host) as c:
        by = await counts(c)
    stored, running = sum(by.values()), by.get("running", 0)
    if args.skip_listings:
        print("2., 3. listings skipped (--skip-listings)", flush=True)
    else:
        await against_bare(host, "/nodes", args.clients, args.requests, args.load_seconds,
                           f"2. node list ({args.nodes} nodes, {running} tasks running)",
                           args.encoding)
        host.phase_done("the node list")
        await against_bare(host, "/tasks", args.clients, args.requests, args.load_seconds,
                           f"3. task list ({stored} tasks stored, {running} running)",
                           args.encoding)
        host.phase_done("the task list")
    slots = args.nodes * args.cores
    print("4. submissions " + ("(every slot taken: new tasks wait in the queue)"
                               if args.tasks >= slots else
                               f"({args.tasks} of {slots} slots taken: new tasks run too)"),
          flush=True)
    await submissions(host, args.clients, args.submit_seconds, 100, args.httpx_submissions)
    # The sweeps left thousands of tasks whose first waiting reason the scheduler still
    # records; the single submissions are measured once it has (else they measure that).
    settled = await settle_queue(host, args.deadline)
    print(f"  (the queue's waiting reasons recorded {settled:.1f}s after the sweeps)",
          flush=True)
    await submissions(host, args.clients, args.submit_seconds, 1, args.httpx_submissions)
    host.phase_done("submissions")
    rss = psutil.Process(host.proc.pid).memory_info().rss
    print(f"5. host RSS: {rss / 2**20:.0f} MiB at the end, peak {host.peak_rss / 2**20:.0f} MiB "
          "(sampled every 0.5s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--procs", type=int, default=1, help="hollow runner processes")
    parser.add_argument("--cores", type=int, default=8, help="cores of each hollow node")
    parser.add_argument("--tasks", type=int, default=None,
                        help="tasks to schedule (1.; default: nodes x cores, every slot)")
    parser.add_argument("--task-seconds", type=float, default=3600.0,
                        help="how long each scheduled task runs (longer than the run)")
    parser.add_argument("--batch", type=int, default=10_000, help="tasks per sweep request (1.)")
    parser.add_argument("--queued", type=int, default=0,
                        help="1. as: queue this many tasks while every node is offline, "
                             "then time the filling of their slots once they are back")
    parser.add_argument("--stored", type=int, default=0,
                        help="completed tasks inserted into the database before the host starts")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=2000, help="per latency measurement")
    parser.add_argument("--load-seconds", type=float, default=60.0,
                        help="at most this long per latency measurement")
    parser.add_argument("--submit-seconds", type=float, default=10.0)
    parser.add_argument("--deadline", type=float, default=600.0, help="per wait, seconds")
    parser.add_argument("--heartbeat", type=float, default=None,
                        help="the host's heartbeat interval (default: the host's)")
    parser.add_argument("--postgres", default=None, help="database URL (default SQLite)")
    parser.add_argument("--skip-listings", action="store_true",
                        help="skip the node and task list latencies (1., 2.)")
    parser.add_argument("--encoding", choices=("gzip", "identity"), default="gzip",
                        help="Accept-Encoding of the listings' clients (2., 3.): gzip as "
                             "browsers and httpx send it, or identity (uncompressed)")
    parser.add_argument("--httpx-submissions", action="store_true",
                        help="submit (4.) with httpx instead of the minimal client")
    args = parser.parse_args()
    if args.tasks is None:
        args.tasks = args.nodes * args.cores
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs, "
          f"{'PostgreSQL' if args.postgres else 'SQLite'}", flush=True)
    with kawa_host(args.postgres, args.heartbeat, args.stored, args.nodes) as host:
        start = time.perf_counter()
        with hollow_fleet(host, args.nodes, args.procs, args.cores) as fleet:
            print(f"{args.nodes} hollow nodes registered in {time.perf_counter() - start:.1f}s",
                  flush=True)
            uvloop.run(scenario(host, args, fleet))
        print(f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
