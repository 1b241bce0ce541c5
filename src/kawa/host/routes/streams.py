"""/api/v1/tasks/{id}/terminal and /forward: WebSocket stream sessions.

The host checks who asks (user token, task ownership, the task's state) and opens the
same session on the task's runner. Then, by default (``stream_relay = "splice"``), it
takes both sockets from their WebSocket stacks and joins them in the kernel: the user's
frames reach the runner unparsed, and the runner, which ends every stream, checks them.
With ``stream_relay = "frames"`` (or a server that cannot hand its socket over) the host
relays whole frames in Python instead, validating each frame's header and size. So it
does when TLS is on either leg (the host serves https or the runner does): each leg's
bytes are encrypted for that leg alone. Either way backpressure is end to end
(docs/streams.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from fastapi import APIRouter, WebSocket
from websockets.exceptions import InvalidHandshake

from kawa.core.task_states import FINAL_STATES, TaskState
from kawa.host.deps import checked_task_ref
from kawa.host.errors import Conflict, Forbidden, ServiceError
from kawa.protocol import streams as proto
from kawa.protocol.streams import FrameError
from kawa.protocol.tasks import TaskView
from kawa.relay import splice
from kawa.relay.pipe import relay
from kawa.store.models import Node
from kawa.ws import websocket
from kawa.ws.asgi import StarletteChannel
from kawa.ws.channel import Channel, ChannelClosed, sendable
from kawa.ws.detach import detach_socket, offers_detach
from kawa.ws.dial import DialRefused, dial

if TYPE_CHECKING:
    from kawa.host.app import Host

router = APIRouter(tags=["streams"])
log = logging.getLogger(__name__)


@router.websocket("/tasks/{ref}/terminal")
async def terminal(ws: WebSocket, ref: str) -> None:
    """A terminal (``docker exec`` with a TTY) in the task's container."""
    await _session(ws, ref, "terminal")


@router.websocket("/tasks/{ref}/forward")
async def forward(ws: WebSocket, ref: str) -> None:
    """Connections to ports of the task's container, one stream each."""
    await _session(ws, ref, "forward")


def not_running(view: TaskView) -> str:
    """Why there is nothing to connect to, naming the task's state."""
    state, tid = view.state, view.id
    if state in (TaskState.PENDING, TaskState.ASSIGNING):
        return f"task {tid} is {state.value}: it has not started yet"
    if state is TaskState.PAUSED:
        return f"task {tid} is paused: resume it first (kawa task resume {tid})"
    if state is TaskState.LOST:
        return f"task {tid} is lost: its runner does not answer"
    code = f" (exit code {view.exit_code})" if view.exit_code is not None else ""
    ended = " and no longer runs" if state in FINAL_STATES or state is TaskState.STOPPED else ""
    return f"task {tid} is {state.value}{code}{ended}"


def _resolve(host: Host, ws: WebSocket, ref: str) -> tuple[str, str]:
    """(task id, runner URL) of a running task the caller may use; ServiceError if not."""
    header = ws.headers.get("authorization")
    if header is None and "token" in ws.query_params:
        header = f"Bearer {ws.query_params['token']}"
    who = host.auth.user(header)
    view = host.tasks.get(checked_task_ref(ref), who)  # "not found" unless the caller may see it
    if who.role == "viewer":
        raise Forbidden("the viewer role cannot open terminals or forward ports")
    if view.state is not TaskState.RUNNING:
        raise Conflict(not_running(view))
    with host.ledger.sessions() as s:
        node = s.get(Node, view.node) if view.node else None
        if node is None:
            raise Conflict(f"task {view.id} has no node")
        return view.id, node.url


async def _session(ws: WebSocket, ref: str, kind: str) -> None:
    host: Host = ws.app.state.host
    client = StarletteChannel(ws)
    try:
        task_id, url = _resolve(host, ws, ref)
    except ServiceError as exc:
        await client.close(4000 + exc.status, exc.detail)
        return
    target = url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
    target = f"{target}/tasks/{task_id}/{kind}"
    headers = {"Authorization": f"Bearer {host.config.cluster_secret}"}
    tls = host.config.tls or not target.startswith("ws://")
    if tls and host.config.stream_relay == "splice":
        _note_tls_frames()
    splicing = (
        host.config.stream_relay == "splice"
        and not tls
        and splice.available()
        and offers_detach(ws.scope)
    )
    tunnel = ws.query_params.get("tunnel") if kind == "forward" else None
    if tunnel is not None:  # raw bytes after READY: only a host that splices carries them
        if not splicing:
            why = (
                "sessions over TLS carry no tunnels"
                if tls
                else 'this host relays frames (stream_relay = "frames"): no tunnels'
            )
            await client.close(proto.CLOSE_NO_TUNNEL, why)
            return
        target += "?" + urlencode({"tunnel": tunnel})
    raw: socket.socket | None = None
    try:
        if splicing:  # keep the runner's socket unread: its READY is spliced through
            raw = await asyncio.to_thread(dial, target, headers, proto.SUBPROTOCOL)
        else:
            runner = await websocket.connect(
                target,
                headers,
                proto.SUBPROTOCOL,
                max_message=2 * proto.MAX_FRAME,
                timeout=10,
                tls=host.link.tls,
            )
    except DialRefused as exc:
        why = f"the task's runner refused: HTTP {exc.status}"
        await client.close(proto.CLOSE_UNREACHABLE, why)
        return
    except (OSError, InvalidHandshake, TimeoutError) as exc:
        await client.close(proto.CLOSE_UNREACHABLE, f"the task's runner is unreachable: {exc}")
        return
    if raw is not None:
        try:
            await client.accept()
            user = await detach_socket(ws.scope)
            if user is not None:
                await splice.splice_sockets(user, raw)
                return
            # uvicorn could not let go (the client sent early): relay frames instead
            runner = await websocket.adopt(raw, client=True, max_message=2 * proto.MAX_FRAME)
        except BaseException:
            raw.close()
            raise
    await _relay_frames(client, runner)


@functools.cache
def _note_tls_frames() -> None:
    """Say once per process why ``stream_relay = "splice"`` is not followed."""
    log.info("stream sessions over TLS are relayed as frames: TLS rules out splicing")


async def _relay_frames(client: StarletteChannel, runner: Channel) -> None:
    """The Python relay: whole frames, each checked, passed on one at a time."""
    try:
        await client.accept()
        user_side, runner_side = FramePipe(client, "client"), FramePipe(runner, "runner")
        user_side.peer, runner_side.peer = runner_side, user_side
        with contextlib.suppress(FrameError, ChannelClosed, ConnectionError):
            await relay(user_side, runner_side, close=False)
    finally:
        await runner.close(proto.CLOSE_NORMAL, "")
        await client.close(proto.CLOSE_NORMAL, "")


class FramePipe:
    """One WebSocket of the host's relay as a pipe of whole, checked frames."""

    def __init__(self, channel: Channel, name: str) -> None:
        self.channel, self.name = channel, name
        self.peer: FramePipe = self
        self.ended: tuple[int, str] | None = None

    async def read(self) -> bytes:
        try:
            message = await self.channel.recv()
            proto.check(message)
        except ChannelClosed as exc:
            self.ended = (exc.code, exc.reason)
            return b""
        except FrameError as exc:  # close this side with the reason, the other side too
            await self.channel.close(exc.code, exc.reason)
            await self.peer.channel.close(
                proto.CLOSE_PROTOCOL, f"the {self.name} broke the protocol"
            )
            raise
        return message

    async def write(self, data: bytes) -> None:
        await self.channel.send(data)

    async def write_eof(self) -> None:
        """The other side closed: close this one with the same code and reason."""
        code, reason = sendable(*(self.peer.ended or (proto.CLOSE_NORMAL, "")))
        await self.channel.close(code, reason)

    async def close(self) -> None:
        await self.channel.close(proto.CLOSE_NORMAL, "")
