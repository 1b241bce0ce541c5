"""A message channel: one WebSocket seen as a sequence of binary messages.

The multiplexer and the host's relay speak to this small interface; adapters wrap the
``websockets`` library's connections (clients, and the host's link to runners) and
Starlette's server-side WebSocket (:mod:`kawa.relay.asgi`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Protocol

from websockets.asyncio.connection import Connection
from websockets.exceptions import ConnectionClosed

from kawa.protocol.streams import FrameError, close_reason

UNSENDABLE = frozenset({1005, 1006, 1015})
"""Close codes that describe a close but may not be sent in a close frame."""


class ChannelClosed(Exception):
    """The WebSocket is closed: ``code`` and ``reason`` as the peer (or we) sent them."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"closed ({code}) {reason}".strip())
        self.code, self.reason = code, reason


class Channel(Protocol):
    async def recv(self) -> bytes:
        """The next binary message; ChannelClosed when closed, FrameError for text."""
        ...

    async def send(self, message: bytes) -> None:
        """Send one message (waits while the peer is slow); ChannelClosed when closed."""
        ...

    async def send_parts(self, parts: Sequence[bytes | memoryview]) -> None:
        """Send one message made of ``parts`` in order (as :meth:`send`)."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Close with ``code`` and ``reason`` (idempotent, never raises)."""
        ...


def sendable(code: int, reason: str) -> tuple[int, str]:
    """A (code, reason) that may go into a close frame, for passing a close along."""
    if code in UNSENDABLE or not 1000 <= code <= 4999:
        return 1011, close_reason(f"connection lost ({code}) {reason}".strip())
    return code, close_reason(reason)


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

    async def close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self.conn.close(code, close_reason(reason))
