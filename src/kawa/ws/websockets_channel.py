"""The ``websockets`` library's asyncio connections as a :class:`~kawa.ws.channel.Channel`
(wss:// sessions, and tests that speak to the library on purpose)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from websockets.asyncio.connection import Connection
from websockets.exceptions import ConnectionClosed

from kawa.protocol.streams import FrameError, close_reason
from kawa.relay.kernel_pipe import drain_pipe
from kawa.ws.channel import ChannelClosed, DirectRoute


class WebsocketsChannel:
    """A ``websockets`` asyncio connection (client or server side)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _closed(self, exc: ConnectionClosed) -> ChannelClosed:
        got = exc.rcvd or exc.sent
        return ChannelClosed(got.code, got.reason) if got else ChannelClosed(1006, "")

    async def recv(self) -> bytes:
        try:
            message = await self.conn.recv()
        except ConnectionClosed as exc:
            raise self._closed(exc) from None
        if isinstance(message, str):
            raise FrameError("text messages are not frames: send binary", 1003)
        return message

    async def send(self, message: bytes) -> None:
        try:
            await self.conn.send(message)
        except ConnectionClosed as exc:
            raise self._closed(exc) from None

    async def send_parts(self, parts: Sequence[bytes | memoryview]) -> None:
        await self.send(b"".join(parts))

    async def send_spliced(
        self, parts: Sequence[bytes | memoryview], pipe_r: int, size: int
    ) -> None:
        await self.send_parts((*parts, drain_pipe(pipe_r, size)))

    def route_direct(self, route: DirectRoute) -> bool:
        return False  # every payload passes through the library

    async def close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self.conn.close(code, close_reason(reason))
