"""Stream sessions through the host: a terminal into a task's container, or connections
to its ports (the routes are ``/api/v1/tasks/{id}/terminal`` and ``/forward``).

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
from urllib.parse import urlencode

from websockets.exceptions import InvalidHandshake

from kawa.core.task_states import FINAL_STATES, TaskState
from kawa.host.auth import Authenticator
from kawa.host.deps import checked_task_ref
from kawa.host.errors import Conflict, Forbidden, ServiceError
from kawa.host.ledger import Ledger
from kawa.host.runner_link import RunnerLink
from kawa.host.task_service import TaskService
from kawa.protocol import streams as proto
from kawa.protocol.streams import FrameError
from kawa.protocol.tasks import TaskView
from kawa.relay import splice
from kawa.relay.pipe import relay
from kawa.settings import HostConfig
from kawa.store.models import Node
from kawa.ws import websocket
from kawa.ws.asgi import StarletteChannel
from kawa.ws.channel import Channel, ChannelClosed, sendable
from kawa.ws.dial import DialRefused, dial

log = logging.getLogger(__name__)


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


class StreamSessions:
    """Opens users' stream sessions on their tasks' runners and joins the two legs."""

    def __init__(
        self,
        config: HostConfig,
        auth: Authenticator,
        tasks: TaskService,
        ledger: Ledger,
        link: RunnerLink,
    ) -> None:
        self.config = config
        self.auth = auth
        self.tasks = tasks
        self.ledger = ledger
        self.link = link

    def _resolve(self, authorization: str | None, ref: str) -> tuple[str, str]:
        """(task id, runner URL) of a running task the caller may use; ServiceError if
        not."""
        who = self.auth.user(authorization)
        view = self.tasks.get(checked_task_ref(ref), who)  # "not found" unless visible
        if who.role == "viewer":
            raise Forbidden("the viewer role cannot open terminals or forward ports")
        if view.state is not TaskState.RUNNING:
            raise Conflict(not_running(view))
        with self.ledger.sessions() as s:
            node = s.get(Node, view.node) if view.node else None
            if node is None:
                raise Conflict(f"task {view.id} has no node")
            return view.id, node.url

    async def serve(
        self,
        client: StarletteChannel,
        authorization: str | None,
        ref: str,
        kind: str,
        tunnel: str | None = None,
    ) -> None:
        """Serve the user's session ``client`` of ``kind`` (``terminal`` or ``forward``;
        a forward may ask for a ``tunnel`` to one port) on task ``ref`` until it ends;
        every refusal closes ``client`` with its reason."""
        try:
            task_id, url = self._resolve(authorization, ref)
        except ServiceError as exc:
            await client.close(4000 + exc.status, exc.detail)
            return
        config = self.config
        target = url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        target = f"{target}/tasks/{task_id}/{kind}"
        headers = {"Authorization": f"Bearer {config.cluster_secret}"}
        tls = config.tls or not target.startswith("ws://")
        if tls and config.stream_relay == "splice":
            _note_tls_frames()
        splicing = (
            config.stream_relay == "splice"
            and not tls
            and splice.available()
            and client.offers_detach()
        )
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
                    tls=self.link.tls,
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
                user = await client.detach()
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
