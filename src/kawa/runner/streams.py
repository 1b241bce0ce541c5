"""The runner's stream endpoints (WebSocket, cluster secret): a terminal into a task's
container and port forwarding to it. The host relays user sessions here frame for
frame; this side ends every stream (docs/streams.md)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import docker
import docker.errors
from fastapi import APIRouter, WebSocket

from kawa.docker_exec.terminal import serve_terminal
from kawa.mux.session import Mux
from kawa.mux.stream import MuxStream, SessionClosed
from kawa.protocol import streams as proto
from kawa.protocol.tasks import NetworkMode
from kawa.relay.pipe import Pipe, open_socket, relay
from kawa.relay.raw_socket import connect_raw, splice_available
from kawa.relay.splice import splice_sockets
from kawa.runner.container_net import container_socket
from kawa.runner.journal import Entry
from kawa.ws import websocket
from kawa.ws.asgi import StarletteChannel
from kawa.ws.channel import Channel
from kawa.ws.detach import detach_socket

router = APIRouter(tags=["streams"])
WATCH_INTERVAL = 0.5


@functools.cache
def _fallback_docker() -> docker.DockerClient:
    return docker.from_env(timeout=120)


async def _live(
    ws: WebSocket, task_id: str, channel: StarletteChannel
) -> tuple[Entry, docker.DockerClient] | None:
    """The running task's journal entry and a Docker client; None when there is none,
    after closing ``channel`` with the reason."""
    service = ws.app.state.service
    node = service.config.name
    entry = service.journal.get(task_id)
    if entry is None or entry.state == "ended":
        refusal = f"task {task_id} is not running on {node}"
    elif entry.state == "paused":
        refusal = f"task {task_id} is paused: resume it first"
    elif entry.order.native or not entry.container:
        refusal = f"task {task_id} runs natively: terminals and forwarding need a container"
    else:
        return entry, getattr(service.executor, "docker", None) or _fallback_docker()
    await channel.close(proto.CLOSE_CONFLICT, refusal)
    return None


async def _session(
    ws: WebSocket,
    task_id: str,
    serve: Callable[[MuxStream, Entry, docker.DockerClient, dict[str, Any]], Awaitable[None]],
    details: Callable[[Entry, docker.DockerClient], dict[str, Any]] | None = None,
) -> None:
    channel = StarletteChannel(ws)
    found = await _live(ws, task_id, channel)
    if found is None:
        return
    entry, client = found
    info: dict[str, Any] = {"task": task_id, "node": ws.app.state.service.config.name}
    if details is not None:
        try:
            info.update(await asyncio.to_thread(details, entry, client))
        except (LookupError, docker.errors.DockerException) as exc:
            await channel.close(proto.CLOSE_CONFLICT, f"task {task_id}: {exc}")
            return
    await channel.accept()
    raw = await detach_socket(ws.scope)  # Kawa's lean WebSocket where uvicorn lets go
    session: Channel = channel
    if raw is not None:
        session = await websocket.adopt(raw, client=False, max_message=2 * proto.MAX_FRAME)

    async def accept(stream: MuxStream) -> None:
        await serve(stream, entry, client, info)

    mux = Mux(session, accept=accept)
    watcher = asyncio.create_task(_watch(ws, task_id, mux))
    try:
        with contextlib.suppress(SessionClosed):
            await mux.send(proto.ready_frame(info).encode())
        await mux.run()
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await session.close(proto.CLOSE_NORMAL, "")


async def _watch(ws: WebSocket, task_id: str, mux: Mux) -> None:
    """End the session when the task ends (the streams end with it)."""
    journal = ws.app.state.service.journal
    while True:
        await asyncio.sleep(WATCH_INTERVAL)
        entry = journal.get(task_id)
        if entry is None or entry.state == "ended":
            await mux.close(proto.CLOSE_GONE, f"task {task_id} ended")
            return


# -- terminal -----------------------------------------------------------------------------
@router.websocket("/tasks/{task_id}/terminal")
async def terminal(ws: WebSocket, task_id: str) -> None:
    await _session(ws, task_id, _serve_terminal)


async def _serve_terminal(
    stream: MuxStream, entry: Entry, client: docker.DockerClient, info: dict[str, Any]
) -> None:
    await serve_terminal(stream, client, entry.container or "", f"task {entry.task_id}")


# -- forwarding ---------------------------------------------------------------------------
@router.websocket("/tasks/{task_id}/forward")
async def forward(ws: WebSocket, task_id: str) -> None:
    if "tunnel" in ws.query_params:
        await _tunnel(ws, task_id, ws.query_params["tunnel"])
        return
    await _session(ws, task_id, _serve_forward, _address)


async def _tunnel(ws: WebSocket, task_id: str, raw_port: str) -> None:
    """One connection to a port of the container, carried raw: after READY the
    WebSocket's bytes are the connection's, both ways, joined in the kernel
    (docs/streams.md, "Tunnels")."""
    channel = StarletteChannel(ws)
    found = await _live(ws, task_id, channel)
    if found is None:
        return
    entry, client = found
    port = int(raw_port) if raw_port.isdigit() else 0
    if not 0 < port < 65536:
        await channel.close(4400, "a tunnel needs a port number 1..65535")
        return
    info: dict[str, Any] = {"task": task_id, "node": ws.app.state.service.config.name}
    where = f"port {port} of task {task_id}"
    try:
        info.update(await asyncio.to_thread(_address, entry, client))
        sock = await container_socket(client, entry.container or "", info["address"])
        target = await connect_raw(info["address"], port, sock=sock)
    except ConnectionRefusedError:
        await channel.close(proto.CLOSE_CONFLICT, f"connection refused: nothing listens on {where}")
        return
    except (LookupError, docker.errors.DockerException, OSError, TimeoutError) as exc:
        await channel.close(proto.CLOSE_UNREACHABLE, f"cannot connect to {where}: {exc}")
        return
    await channel.accept()
    raw = await detach_socket(ws.scope) if splice_available() else None
    if raw is None:
        await target.close()
        await channel.close(proto.CLOSE_NO_TUNNEL, "this runner cannot carry a tunnel")
        return
    ready = proto.ready_frame(info).encode()
    loop = asyncio.get_running_loop()
    joined = asyncio.create_task(_ready_then_splice(loop, raw, ready, target.sock))
    watcher = asyncio.create_task(_watch_tunnel(ws, task_id, joined))
    try:
        await asyncio.gather(joined, return_exceptions=True)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


async def _ready_then_splice(
    loop: asyncio.AbstractEventLoop, raw: socket.socket, ready: bytes, target: socket.socket
) -> None:
    try:
        raw.setblocking(False)
        head = websocket.frame_header(websocket.OP_BINARY, len(ready))
        await loop.sock_sendall(raw, head + ready)
    except OSError:
        raw.close()
        target.close()
        return
    await splice_sockets(raw, target)


async def _watch_tunnel(ws: WebSocket, task_id: str, joined: asyncio.Task[None]) -> None:
    """End the tunnel when the task ends."""
    journal = ws.app.state.service.journal
    while not joined.done():
        await asyncio.sleep(WATCH_INTERVAL)
        entry = journal.get(task_id)
        if entry is None or entry.state == "ended":
            joined.cancel()
            return


def _address(entry: Entry, client: docker.DockerClient) -> dict[str, Any]:
    """Where the runner reaches the container: its bridge IP, or 127.0.0.1 on the host
    network."""
    if entry.order.network is NetworkMode.HOST:
        return {"address": "127.0.0.1"}
    settings = client.api.inspect_container(entry.container)["NetworkSettings"]
    found = settings.get("IPAddress") or next(
        (n["IPAddress"] for n in (settings.get("Networks") or {}).values() if n.get("IPAddress")),
        None,
    )
    if not found:
        raise LookupError("its container has no network address")
    return {"address": found}


async def _serve_forward(
    stream: MuxStream, entry: Entry, client: docker.DockerClient, info: dict[str, Any]
) -> None:
    port = stream.params.get("port")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        await stream.fail("OPEN needs a port number 1..65535")
        return
    where = f"port {port} of task {entry.task_id}"
    try:
        pipe: Pipe
        sock = await container_socket(client, entry.container or "", info["address"])
        if splice_available():  # the container's bytes reach the session in the kernel
            pipe = await connect_raw(info["address"], port, sock=sock)
        else:
            pipe = await open_socket(info["address"], port, sock=sock)
    except ConnectionRefusedError:
        await stream.fail(f"connection refused: nothing listens on {where}")
        return
    except (OSError, TimeoutError, LookupError, docker.errors.DockerException) as exc:
        await stream.fail(f"cannot connect to {where}: {exc or 'timed out'}")
        return
    with contextlib.suppress(ConnectionError):
        await relay(stream, pipe)
