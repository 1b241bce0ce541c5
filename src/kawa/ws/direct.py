"""Payloads that go from a WebSocket's socket to their destination through a kernel
pipe, never through Python (the client side of a stream session; docs/streams.md).

:class:`DirectPayloads` is the part of :class:`~kawa.ws.websocket.WebSocketChannel`
that does it: when the channel's reader (:attr:`direct`, set by
:meth:`~kawa.ws.channel.Channel.route_direct`) names a destination for a large
binary message, the channel stops its transport from reading, splices the rest of the
message from a duplicate of the socket's descriptor into a pipe and from the pipe to the
destination, and hands whatever the destination does not take at once to the ordinary
path, in order.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from kawa.relay.kernel_pipe import drain_pipe, open_pipe
from kawa.ws.channel import DirectRoute, DirectSink

DIRECT_PREFIX = 6  # bytes of a message shown to ``direct`` (a stream frame's header)
DIRECT_MIN = 32 * 1024  # smaller remainders are not worth a splice
DIRECT_PEEK = 10 + DIRECT_PREFIX  # an unmasked header of a large message, and the prefix
HOLD_TURNS = 4
"""Turns of the event loop a large message's header may wait for its payload to be able to
go direct (see ``_direct_or_hold``)."""
_PIPE_SIZE = 1 << 20
_SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)


class DirectPayloads:
    """Mixed into the channel: its transport and the direct-payload state."""

    transport: asyncio.Transport | None

    def _init_direct(self) -> None:
        self.direct: DirectRoute | None = None
        """Set by the reader of this channel (:meth:`route_direct`): given the first
        ``DIRECT_PREFIX`` bytes of a large binary message and its length, where to splice
        the rest (or None)."""
        self._direct: list[Any] | None = None
        self._pipe: tuple[int, int] | None = None
        self._dupfd = -1
        self._watching = False  # the socket's duplicate is registered with the loop
        self._reading_paused = False  # as last asked of the transport
        self._held = False  # reading paused for a turn of the loop (see _direct_or_hold)
        self._held_turns = 0
        self._peek = False  # the last message went direct: read the next header alone
        self.direct_bytes = 0
        """Payload bytes that went from the socket to their destination without Python."""

    def route_direct(self, route: DirectRoute) -> bool:
        """Payloads go straight where ``route`` says, where the platform splices (Linux)."""
        if not hasattr(os, "splice"):
            return False
        self.direct = route
        return True

    def _close_direct(self) -> None:
        if self._direct is not None:
            self._end_direct()
        if self._pipe is not None:
            for fd in (*self._pipe, self._dupfd):
                os.close(fd)
            self._pipe = None

    def _direct_or_hold(self, prefix: bytes, length: int) -> DirectSink | bool:
        """For a large binary message whose header was just read: where its payload goes
        (a sink), or True when reading is held for a turn of the event loop, or False for
        the ordinary path.

        While messages read earlier wait for the reader, or the destination's pump is
        still busy, the payload cannot go direct yet. Reading it into Python then would
        keep it so: the next header arrives while this message waits in turn. So reading
        pauses for up to :data:`HOLD_TURNS` turns of the loop (those consumers run) before
        the ordinary path takes the payload.
        """
        assert self.direct is not None
        sink = None if self._pending_messages() else self.direct(prefix, length)
        if sink is not None:
            self._held_turns = 0
            return sink
        if self._held_turns < HOLD_TURNS and self.transport is not None:
            self._held_turns += 1
            if not self._held:
                self._held = True
                self._set_reading()
                asyncio.get_running_loop().call_soon(self._retry)
            return True
        self._held_turns = 0
        self._peek = False
        return False

    def _retry(self) -> None:
        self._held = False
        if self.transport is None or self.transport.is_closing():
            return
        self._reparse()
        self._set_reading()

    def _set_reading(self) -> None:
        """Pause or resume the transport's reading as the channel's states ask: paused
        while a payload goes direct, while a header is held, or while too many messages
        wait for the reader."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        paused = self._held or self._direct is not None or self._read_paused()
        if paused != self._reading_paused:
            self._reading_paused = paused
            if paused:
                transport.pause_reading()
            else:
                transport.resume_reading()

    def _peek_size(self) -> int | None:
        """How much to read at a message boundary: just the next header (and the prefix
        shown to ``direct``) right after a direct payload, else None (all there is)."""
        return DIRECT_PEEK if self._peek else None

    def _begin_direct(self, sink: DirectSink, first: memoryview, remaining: int) -> None:
        """The rest of this message goes from the socket to ``sink`` through a kernel
        pipe; ``first`` (already read) goes ahead of it."""
        transport = self.transport
        raw = transport.get_extra_info("socket") if transport is not None else None
        if transport is None or raw is None:
            raise RuntimeError("a direct payload needs the channel's socket")
        if self._pipe is None:
            self._pipe = open_pipe(_PIPE_SIZE, nonblocking=True)
            self._dupfd = os.dup(raw.fileno())  # ours: never reused while we hold it
        overflowing = False
        if first:
            written = sink.write(first)
            if written < len(first):
                sink.overflow(bytes(first[written:]))
                overflowing = True
        self._direct = [sink, remaining, overflowing]
        self._set_reading()
        self._on_direct()  # often the payload is already there: no need to wait for it

    def _on_direct(self) -> None:
        """Splice what has arrived of the payload; wait for the rest."""
        assert self._pipe is not None
        pipe_r, pipe_w = self._pipe
        while self._direct is not None:
            sink, remaining, overflowing = self._direct
            try:
                n = os.splice(self._dupfd, pipe_w, min(remaining, _PIPE_SIZE), flags=_SPLICE_FLAGS)
            except BlockingIOError:
                if not self._watching:
                    self._watching = True
                    asyncio.get_running_loop().add_reader(self._dupfd, self._on_direct)
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
                self.direct_bytes += moved
            if moved < n:
                sink.overflow(drain_pipe(pipe_r, n - moved))
            self._direct = [sink, remaining, overflowing]
            if remaining == 0:
                self._peek = True
                self._end_direct()

    def _end_direct(self) -> None:
        self._direct = None
        if self._watching:
            self._watching = False
            asyncio.get_running_loop().remove_reader(self._dupfd)
        self._set_reading()

    # -- provided by the channel -------------------------------------------------------
    def _pending_messages(self) -> bool:
        """Whether messages read earlier still wait for the channel's reader."""
        raise NotImplementedError

    def _reparse(self) -> None:
        """Parse what is buffered again (after a hold)."""
        raise NotImplementedError

    def _read_paused(self) -> bool:
        """Whether reading is paused for another reason (too many unread messages)."""
        raise NotImplementedError
