"""Hollow runners: many simulated nodes in one process, for scale benchmarks only.

Each hollow node speaks the runner's protocol to the host exactly as a real runner does
(the same wire models, routes and cluster-secret header): it registers, answers the
host's reach-back ``GET /health``, heartbeats on the interval the host hands out listing
its tasks, accepts ``POST /tasks`` (answers ``running``), kill/stop control, and reports
each ending to the host's report route. Its executor only simulates: a task sleeps its
requested duration (``sleep N`` as the command, else the task's ``KAWA_HOLLOW_SECONDS``
environment variable, else 0) and ends with exit code 0.

All nodes of a process share one port; each node's URL is ``http://127.0.0.1:PORT/n/NAME``
(the host appends ``/health`` and ``/tasks…`` to a runner's URL, path included).

Never a stand-in for the real executor in tests: the tests run real runners and Docker.

    KAWA_HOLLOW_SECRET=<cluster secret> .venv/bin/python bench/hollow.py \
        --host-url URL --port P [--nodes 50] [--cores 128] [--prefix hollow]

The cluster secret comes from ``$KAWA_HOLLOW_SECRET`` (or ``--secret``, which other users
of the machine can read in the process list). ``bench/scale.py`` starts these itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import logging
import os
import signal
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kawa import __version__
from kawa.client.errors import KawaError
from kawa.client.host_urls import HostUrls
from kawa.client.runner_channel import HostChannel
from kawa.protocol.join import PROTOCOL_VERSION
from kawa.protocol.nodes import (
    GpuInfo,
    Heartbeat,
    NodeInventory,
    NodeRegistration,
    NodeUsageSample,
    NumaUsage,
    NumaZoneInfo,
    RunnerTaskObservation,
)
from kawa.protocol.runner_api import ExitKind, RunnerAck, RunTask, TaskReport

log = logging.getLogger("hollow")

GiB = 1024**3


def inventory(cores: int, zones: int, gpus: int) -> NodeInventory:
    """A multi-socket GPU node: ``zones`` NUMA zones splitting ``cores`` and 512 GiB,
    ``gpus`` A100-80GB (as the recorded inventories in the tests)."""
    per = cores // zones
    return NodeInventory(
        cores=cores,
        memory=512 * GiB,
        numa=[
            NumaZoneInfo(id=z, cpus=list(range(z * per, (z + 1) * per)), memory=512 * GiB // zones)
            for z in range(zones)
        ],
        gpus=[
            GpuInfo(
                index=i,
                uuid=f"GPU-00000000-0000-a100-0000-{i:012x}",
                name="NVIDIA A100-SXM4-80GB",
                memory_total=80 * GiB,
            )
            for i in range(gpus)
        ],
    )


def seconds_of(order: RunTask) -> float:
    """How long a simulated task runs: ``sleep N`` as its command, else its
    ``KAWA_HOLLOW_SECONDS`` variable, else 0."""
    with contextlib.suppress(ValueError, IndexError):
        if order.command and order.command[0] == "sleep":
            return max(0.0, float(order.command[1]))
    with contextlib.suppress(ValueError):
        return max(0.0, float(order.env.get("KAWA_HOLLOW_SECONDS", "0")))
    return 0.0


@dataclass
class Ended:
    kind: ExitKind
    code: int | None
    at: datetime


@dataclass
class HollowNode:
    name: str
    url: str
    inventory: NodeInventory
    channel: NodeChannel
    running: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    ended: dict[str, Ended] = field(default_factory=dict)
    """Endings the host has not acknowledged yet (listed as ``exited`` in heartbeats)."""
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def observations(self) -> list[RunnerTaskObservation]:
        return [RunnerTaskObservation(task_id=t, state="running") for t in self.running] + [
            RunnerTaskObservation(task_id=t, state="exited") for t in self.ended
        ]

    def usage(self) -> NodeUsageSample:
        busy = min(100.0, 100.0 * len(self.running) / self.inventory.cores)
        return NodeUsageSample(
            at=datetime.now(UTC),
            cpu_percent=busy,
            memory_used=self.inventory.memory // 10,
            memory_percent=10.0,
            memory_total=self.inventory.memory,
            load=[busy / 100 * self.inventory.cores] * 3,
            gpus=self.inventory.gpus,
            numa=[NumaUsage(id=z.id, cpu_percent=busy) for z in self.inventory.numa],
        )

    def start(self, order: RunTask) -> None:
        if order.task_id in self.running:
            return
        self.running[order.task_id] = asyncio.create_task(self._simulate(order))

    async def _simulate(self, order: RunTask) -> None:
        await asyncio.sleep(seconds_of(order))
        self._end(order.task_id, ExitKind.EXITED, 0)

    def _end(self, task_id: str, kind: ExitKind, code: int | None) -> None:
        self.running.pop(task_id, None)
        self.ended[task_id] = Ended(kind, code, datetime.now(UTC))
        self.wake.set()

    def kill(self, task_id: str) -> bool:
        task = self.running.get(task_id)
        if task is None:
            return False
        task.cancel()
        self._end(task_id, ExitKind.KILLED, 137)
        return True


class NodeChannel(HostChannel):
    """One hollow node's channel to the host, with a pool of its own as a real runner
    has: one pool for a whole fleet scans all its connections for each request, which
    costs this process time in proportion to the fleet's size (it fell behind with
    500 nodes, and their heartbeats with it). ``verify`` is shared: one TLS context for
    the fleet, not one built per node."""

    def __init__(self, host_url: str, cluster_secret: str, verify: ssl.SSLContext) -> None:
        self.urls = HostUrls(host_url)
        self._http = httpx.AsyncClient(
            timeout=60.0,
            headers={"Authorization": f"Bearer {cluster_secret}"},
            verify=verify,
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=4),
        )


def why(exc: KawaError) -> str:
    """The error with what caused it (a timeout's message is empty)."""
    cause = exc.__context__
    return f"{exc} {type(cause).__name__}" if cause is not None else str(exc)


class HollowFleet:
    """Nodes ``{prefix}-0000`` … served by one app, talking to one host."""

    def __init__(self, host_url: str, secret: str, port: int, names: list[str],
                 inv: NodeInventory) -> None:
        self.secret = secret.encode()
        verify = ssl.create_default_context()
        self.nodes = {
            n: HollowNode(n, f"http://127.0.0.1:{port}/n/{n}", inv,
                          NodeChannel(host_url, secret, verify))
            for n in names
        }
        self.interval = 2.0
        self.registered = 0

    # -- the runner's routes ---------------------------------------------------------
    def _node(self, request: Request) -> HollowNode | Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not token or not hmac.compare_digest(token.encode(), self.secret):
            return JSONResponse({"detail": "invalid cluster secret"}, 401)
        node = self.nodes.get(request.path_params["name"])
        if node is None:
            return JSONResponse({"detail": "no such hollow node"}, 404)
        return node

    async def health(self, request: Request) -> Response:
        node = self._node(request)
        if isinstance(node, Response):
            return node
        return JSONResponse({"status": "ok", "name": node.name})

    async def run_task(self, request: Request) -> Response:
        node = self._node(request)
        if isinstance(node, Response):
            return node
        order = RunTask.model_validate_json(await request.body())
        node.start(order)
        return JSONResponse(RunnerAck(state="running").model_dump(mode="json"))

    async def control(self, request: Request) -> Response:
        node = self._node(request)
        if isinstance(node, Response):
            return node
        task_id, action = request.path_params["task_id"], request.path_params["action"]
        if action not in ("kill", "stop"):
            return JSONResponse({"detail": f"hollow nodes do not {action}"}, 422)
        if not node.kill(task_id):
            return JSONResponse({"detail": f"no running task {task_id}"}, 409)
        return JSONResponse(RunnerAck(state="stopping").model_dump(mode="json"))

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/n/{name}/health", self.health),
            Route("/n/{name}/tasks", self.run_task, methods=["POST"]),
            Route("/n/{name}/tasks/{task_id}/{action}", self.control, methods=["POST"]),
        ])

    # -- the runner's calls ------------------------------------------------------------
    async def _register(self, node: HollowNode) -> None:
        delay = 0.2
        while True:
            reg = NodeRegistration(name=node.name, url=node.url, inventory=node.inventory,
                                   version=__version__, protocol_version=PROTOCOL_VERSION)
            try:
                accepted = await node.channel.register(reg)
            except KawaError as exc:
                if exc.status in (400, 401, 409, 422):
                    raise SystemExit(f"{node.name}: registration refused: {exc}") from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self.interval = accepted.heartbeat_interval
            self.registered += 1
            return

    async def _heartbeats(self, node: HollowNode, offset: float) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(offset)  # spread the fleet's heartbeats over the interval
        while True:
            due = loop.time() + self.interval
            hb = Heartbeat(name=node.name, usage=node.usage(), tasks=node.observations())
            try:
                await node.channel.heartbeat(hb)
            except KawaError as exc:
                if exc.status == 404:
                    await self._register(node)
                else:
                    log.warning("%s: heartbeat failed: %s", node.name, why(exc))
            await asyncio.sleep(max(0.0, due - loop.time()))

    async def _reports(self, node: HollowNode) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(node.wake.wait(), 2.0)
            node.wake.clear()
            for task_id, e in list(node.ended.items()):
                report = TaskReport(task_id=task_id, node=node.name, state="ended",
                                    exit_kind=e.kind, exit_code=e.code, at=e.at)
                try:
                    await node.channel.report(report)
                except KawaError as exc:
                    log.warning("%s: report of %s not delivered: %s", node.name, task_id,
                                why(exc))
                    break
                node.ended.pop(task_id, None)

    async def run(self, ready: asyncio.Event) -> None:
        gate = asyncio.Semaphore(16)  # a fleet coming up, not 500 reach-back probes at once

        async def register(node: HollowNode) -> None:
            async with gate:
                await self._register(node)

        await asyncio.gather(*(register(n) for n in self.nodes.values()))
        ready.set()
        count = len(self.nodes)
        await asyncio.gather(
            *(self._heartbeats(n, self.interval * i / count) for i, n in
              enumerate(self.nodes.values())),
            *(self._reports(n) for n in self.nodes.values()),
        )


async def serve(args: argparse.Namespace) -> None:
    names = [f"{args.prefix}-{i:04d}" for i in range(args.first, args.first + args.nodes)]
    fleet = HollowFleet(args.host_url, args.secret, args.port, names,
                        inventory(args.cores, args.numa, args.gpus))
    config = uvicorn.Config(fleet.app(), host="127.0.0.1", port=args.port, log_level="warning",
                            access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await serving
            return
        await asyncio.sleep(0.02)
    ready = asyncio.Event()
    main = asyncio.create_task(fleet.run(ready))
    await ready.wait()
    print(f"hollow: {fleet.registered} nodes registered", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # ours, in place of the ones uvicorn set
        loop.add_signal_handler(sig, stop.set)
    await asyncio.wait([main, asyncio.create_task(stop.wait())],
                       return_when=asyncio.FIRST_COMPLETED)
    main.cancel()
    server.should_exit = True
    await serving
    for node in fleet.nodes.values():
        await node.channel.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host-url", required=True)
    parser.add_argument("--secret", default=os.environ.get("KAWA_HOLLOW_SECRET"),
                        help="the cluster secret (default: $KAWA_HOLLOW_SECRET)")
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--first", type=int, default=0, help="index of the first node")
    parser.add_argument("--prefix", default="hollow")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cores", type=int, default=128)
    parser.add_argument("--numa", type=int, default=2)
    parser.add_argument("--gpus", type=int, default=4)
    args = parser.parse_args()
    if not args.secret:
        parser.error("no cluster secret (--secret or $KAWA_HOLLOW_SECRET)")
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
