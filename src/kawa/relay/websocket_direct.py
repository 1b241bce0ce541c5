"""Payloads that go from a WebSocket's socket to their destination through a kernel
pipe, never through Python (the client side of a stream session; docs/streams.md).

:class:`DirectPayloads` is the part of :class:`~kawa.relay.websocket.WebSocketChannel`
that does it: when the channel's reader (:attr:`direct`) names a destination for a large
binary message, the channel stops its transport from reading, splices the rest of the
message from a duplicate of the socket's descriptor into a pipe and from the pipe to the
destination, and hands whatever the destination does not take at once to the ordinary
path, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import Callable
from typing import Any, Protocol

from kawa.relay.channel import drain_pipe

DIRECT_PREFIX = 6  # bytes of a message shown to ``direct`` (a stream frame's header)
DIRECT_MIN = 32 * 1024  # smaller remainders are not worth a splice
_PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = 1031
_SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)


class DirectSink(Protocol):
    """Where a message's payload goes without passing through Python (see
    :attr:`WebSocketChannel.direct`)."""

    def write(self, data: memoryview) -> int:
        """Write what the destination takes now; the count."""
        ...

    def splice(self, pipe_r: int, size: int) -> int:
        """Move up to ``size`` bytes from the pipe to the destination; the count."""
        ...

    def overflow(self, data: bytes) -> None:
        """Bytes that could not go straight there: deliver them the ordinary way."""
        ...




class DirectPayloads:
    """Mixed into the channel: its transport and the direct-payload state."""

    transport: asyncio.Transport | None

    def _init_direct(self) -> None:
        self.direct: Callable[[bytes, int], DirectSink | None] | None = None
        """Set by the reader of this channel: given the first ``DIRECT_PREFIX`` bytes of
        a large binary message and its length, where to splice the rest (or None)."""
        self._direct: list[Any] | None = None
        self._pipe: tuple[int, int] | None = None
        self._dupfd = -1

    def _close_direct(self) -> None:
        if self._direct is not None:
            self._end_direct()
        if self._pipe is not None:
            for fd in (*self._pipe, self._dupfd):
                os.close(fd)
            self._pipe = None

    def _begin_direct(self, sink: DirectSink, first: memoryview, remaining: int) -> None:
        """The rest of this message goes from the socket to ``sink`` through a kernel
        pipe; ``first`` (already read) goes ahead of it."""
        transport = self.transport
        raw = transport.get_extra_info("socket") if transport is not None else None
        if transport is None or raw is None:
            raise RuntimeError("a direct payload needs the channel's socket")
        if self._pipe is None:
            self._pipe = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
            self._dupfd = os.dup(raw.fileno())  # ours: never reused while we hold it
            with contextlib.suppress(OSError):
                fcntl.fcntl(self._pipe[1], _F_SETPIPE_SZ, _PIPE_SIZE)
        overflowing = False
        if first:
            written = sink.write(first)
            if written < len(first):
                sink.overflow(bytes(first[written:]))
                overflowing = True
        self._direct = [sink, remaining, overflowing]
        transport.pause_reading()
        loop = asyncio.get_running_loop()
        loop.add_reader(self._dupfd, self._on_direct)

    def _on_direct(self) -> None:
        assert self._direct is not None and self._pipe is not None
        sink, remaining, overflowing = self._direct
        pipe_r, pipe_w = self._pipe
        try:
            n = os.splice(self._dupfd, pipe_w, min(remaining, _PIPE_SIZE), flags=_SPLICE_FLAGS)
        except BlockingIOError:
            return
        except OSError:
            n = 0
        if n == 0:  # the connection ended inside the message: the transport reports it
            self._end_direct()
            return
        remaining -= n
        moved = 0
        if not overflowing:
            moved = sink.splice(pipe_r, n)
            overflowing = moved < n
        if moved < n:
            sink.overflow(drain_pipe(pipe_r, n - moved))
        self._direct = [sink, remaining, overflowing]
        if remaining == 0:
            self._end_direct()

    def _end_direct(self) -> None:
        self._direct = None
        asyncio.get_running_loop().remove_reader(self._dupfd)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

