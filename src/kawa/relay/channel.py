"""A message channel: one WebSocket seen as a sequence of binary messages.

The multiplexer and the host's relay speak to this small interface. Implementations:
Kawa's own WebSocket (:mod:`kawa.relay.websocket`), the ``websockets`` library's
connections (:mod:`kawa.relay.websockets_channel`, for wss://) and Starlette's
server-side WebSocket (:mod:`kawa.relay.asgi`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol

from kawa.protocol.streams import close_reason

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


def drain_pipe(pipe_r: int, size: int) -> bytes:
    """Exactly ``size`` bytes that are known to be waiting in a pipe."""
    parts = []
    while size:
        chunk = os.read(pipe_r, size)
        if not chunk:
            raise ConnectionError("the pipe ended early")
        parts.append(chunk)
        size -= len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def sendable(code: int, reason: str) -> tuple[int, str]:
    """A (code, reason) that may go into a close frame, for passing a close along."""
    if code in UNSENDABLE or not 1000 <= code <= 4999:
        return 1011, close_reason(f"connection lost ({code}) {reason}".strip())
    return code, close_reason(reason)
