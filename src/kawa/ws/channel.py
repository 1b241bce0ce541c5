"""A message channel: one WebSocket seen as a sequence of binary messages.

The multiplexer and the host's relay speak to this small interface. Implementations:
Kawa's own WebSocket (:mod:`kawa.ws.websocket`), the ``websockets`` library's
connections (:mod:`kawa.ws.websockets_channel`, for wss://) and Starlette's
server-side WebSocket (:mod:`kawa.ws.asgi`). What a channel can do beyond messages
(sending bytes that wait in a kernel pipe, delivering payloads past Python) is part of
the interface, so its users never ask which implementation they hold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from kawa.protocol.streams import close_reason

UNSENDABLE = frozenset({1005, 1006, 1015})
"""Close codes that describe a close but may not be sent in a close frame."""


class ChannelClosed(Exception):
    """The WebSocket is closed: ``code`` and ``reason`` as the peer (or we) sent them."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"closed ({code}) {reason}".strip())
        self.code, self.reason = code, reason


class DirectSink(Protocol):
    """Where a message's payload goes without passing through Python (see
    :meth:`Channel.route_direct`)."""

    def write(self, data: memoryview) -> int:
        """Write what the destination takes now; the count."""
        ...

    def splice(self, pipe_r: int, size: int) -> int:
        """Move up to ``size`` bytes from the pipe to the destination; the count."""
        ...

    def overflow(self, data: bytes) -> None:
        """Bytes that could not go straight there: deliver them the ordinary way."""
        ...


DirectRoute = Callable[[bytes, int], DirectSink | None]
"""Given the first bytes of a large binary message (a stream frame's header) and the
message's length: where to send the rest of it straight, or None for :meth:`Channel.recv`."""


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

    async def send_spliced(
        self, parts: Sequence[bytes | memoryview], pipe_r: int, size: int
    ) -> None:
        """Send one message: ``parts``, then the ``size`` bytes known to wait in the kernel
        pipe ``pipe_r`` (all taken from it), past Python where the channel can."""
        ...

    def route_direct(self, route: DirectRoute) -> bool:
        """From now on let ``route`` send large binary messages' payloads straight to
        their destination; False (and nothing changes) when this channel cannot."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Close with ``code`` and ``reason`` (idempotent, never raises)."""
        ...


def sendable(code: int, reason: str) -> tuple[int, str]:
    """A (code, reason) that may go into a close frame, for passing a close along."""
    if code in UNSENDABLE or not 1000 <= code <= 4999:
        return 1011, close_reason(f"connection lost ({code}) {reason}".strip())
    return code, close_reason(reason)
