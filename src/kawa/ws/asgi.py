"""Starlette's server-side WebSocket as a :class:`~kawa.ws.channel.Channel`."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Sequence

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from kawa.protocol.streams import SUBPROTOCOL, FrameError, close_reason
from kawa.relay.kernel_pipe import drain_pipe
from kawa.ws.channel import ChannelClosed, DirectRoute
from kawa.ws.detach import detach_socket, offers_detach


class StarletteChannel:
    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self._ended: ChannelClosed | None = None

    async def accept(self) -> None:
        offered = self.ws.scope.get("subprotocols") or []
        await self.ws.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)

    def offers_detach(self) -> bool:
        """Whether the server may hand this connection's socket over (:meth:`detach`)."""
        return offers_detach(self.ws.scope)

    async def detach(self) -> socket.socket | None:
        """The accepted connection's socket, now the caller's; None if the server
        cannot let go of it (:mod:`kawa.ws.detach`)."""
        return await detach_socket(self.ws.scope)

    async def recv(self) -> bytes:
        if self._ended is not None:
            raise self._ended
        message = await self.ws.receive()
        if message["type"] == "websocket.disconnect":
            self._ended = ChannelClosed(message.get("code", 1005), message.get("reason") or "")
            raise self._ended
        data = message.get("bytes")
        if data is None:
            raise FrameError("text messages are not frames: send binary", 1003)
        return bytes(data)

    async def send(self, message: bytes) -> None:
        if self._ended is not None:
            raise self._ended
        try:
            await self.ws.send_bytes(message)
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            self._ended = ChannelClosed(getattr(exc, "code", 1006), "client went away")
            raise self._ended from None

    async def send_parts(self, parts: Sequence[bytes | memoryview]) -> None:
        await self.send(b"".join(parts))

    async def send_spliced(
        self, parts: Sequence[bytes | memoryview], pipe_r: int, size: int
    ) -> None:
        await self.send_parts((*parts, drain_pipe(pipe_r, size)))

    def route_direct(self, route: DirectRoute) -> bool:
        return False  # every payload passes through the library

    async def close(self, code: int, reason: str) -> None:
        if self._ended is None:
            self._ended = ChannelClosed(code, reason)
        if self.ws.application_state is WebSocketState.CONNECTING:
            await self.accept()  # to give the reason in a close frame
        with contextlib.suppress(Exception):
            await self.ws.close(code, close_reason(reason))
