"""The gateway's way to a VPS's sshd: through a tunnel its runner carries, or a forward
session with its runner (docs/streams.md)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator

from websockets.exceptions import InvalidHandshake

from kawa.mux.session import Mux
from kawa.protocol import streams as proto
from kawa.ws import websocket
from kawa.ws.dial import Closed, DialRefused, tunnel

SSH_PORT = 22


async def runner_tunnel(url: str, secret: str, task_id: str) -> socket.socket | None:
    """A socket tunnelled straight to the VPS's sshd through its runner (the host is
    trusted); None if the runner carries no tunnels. Raises Closed if the runner refuses."""
    target = url.replace("http://", "ws://", 1)
    if not target.startswith("ws://"):
        return None
    ws_url = f"{target}/tasks/{task_id}/forward?tunnel={SSH_PORT}"
    try:
        sock = await asyncio.to_thread(tunnel, ws_url, {"Authorization": f"Bearer {secret}"})
    except Closed as exc:
        if exc.code == proto.CLOSE_NO_TUNNEL:
            return None
        raise
    except (DialRefused, InvalidHandshake) as exc:
        raise Closed(proto.CLOSE_UNREACHABLE, str(exc)) from None
    return sock


@contextlib.asynccontextmanager
async def runner_session(
    url: str, secret: str, task_id: str, tls: ssl.SSLContext | None = None
) -> AsyncIterator[Mux]:
    """A forward session straight to the VPS's runner (the host is trusted); a runner
    serving https is verified with ``tls`` (default: the system's CA certificates)."""
    target = url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
    channel = await websocket.connect(
        f"{target}/tasks/{task_id}/forward",
        {"Authorization": f"Bearer {secret}"},
        proto.SUBPROTOCOL,
        max_message=2 * proto.MAX_FRAME,
        timeout=10,
        tls=tls,
    )
    mux = Mux(channel)
    reader = asyncio.create_task(mux.run(), name=f"gateway-{task_id}")
    try:
        await mux.ready(30.0)
        yield mux
    finally:
        await mux.close()
        await asyncio.gather(reader, return_exceptions=True)
