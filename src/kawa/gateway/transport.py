"""What sits between an asyncssh connection and its socket on the gateway's fast path."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

READ_SPLIT = 64 * 1024
"""Largest piece of received bytes handed to asyncssh at once."""


class CoalescingTransport(asyncio.Protocol):
    """The transport an asyncssh connection writes to, and the protocol its socket
    reads into (installed by :mod:`kawa.gateway.asyncssh_fast_path`):

    - writes: asyncssh writes every packet on its own, a system call each; here the
      packets of one event-loop turn go out in one ``writelines``;
    - reads: received bytes go to :attr:`route` (the fast path's packet opener) when
      set, else to asyncssh, in pieces of at most :data:`READ_SPLIT` bytes: asyncssh
      keeps unparsed input in ``bytes`` and copies the rest of it after every packet
      (quadratic in the size of a read; uvloop reads up to 256 KiB).

    Everything else asyncssh asks of its transport goes to the socket's transport.
    """

    def __init__(self, conn: asyncio.Protocol, transport: Any) -> None:
        self.conn = conn
        self.transport: asyncio.Transport = transport  # uvloop's are no subclasses
        self.loop = asyncio.get_running_loop()
        self.pending: list[bytes | bytearray] = []
        self.scheduled = False
        self.route: Callable[[bytes], None] = self.to_asyncssh
        """Where received bytes go first."""

    # -- the transport asyncssh sees ------------------------------------------------
    def write(self, data: bytes) -> None:
        self.pending.append(data)
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.flush)

    def writelines(self, data: list[bytes | bytearray]) -> None:
        self.pending += data
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self.scheduled = False
        if self.pending:
            pending, self.pending = self.pending, []
            if not self.transport.is_closing():
                self.transport.writelines(pending)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def abort(self) -> None:
        self.pending.clear()
        self.transport.abort()

    def __getattr__(self, name: str) -> Any:  # everything else is the socket's transport
        return getattr(self.transport, name)

    # -- the protocol the socket sees -----------------------------------------------
    def data_received(self, data: bytes) -> None:
        self.route(data)

    def to_asyncssh(self, data: bytes) -> None:
        if len(data) <= READ_SPLIT:
            self.conn.data_received(data)
            return
        view = memoryview(data)
        for start in range(0, len(data), READ_SPLIT):
            self.conn.data_received(bytes(view[start : start + READ_SPLIT]))

    def eof_received(self) -> None:
        self.conn.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.connection_lost(exc)

    def pause_writing(self) -> None:
        self.conn.pause_writing()

    def resume_writing(self) -> None:
        self.conn.resume_writing()
