"""One stream of a multiplexed session: a :class:`~kawa.relay.pipe.Pipe` with its own
credit windows in each direction (see docs/streams.md, "Flow control").

A stream sees its session (:class:`~kawa.mux.session.Mux`) only through
:class:`Session`, so this module does not import the session's."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, cast

from kawa.protocol import streams as proto
from kawa.relay.kernel_pipe import open_pipe

_SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)


class KernelSource(Protocol):
    """A socket whose bytes can be spliced into a pipe (see :meth:`MuxStream.splice_from`)."""

    def splice_into(self, pipe_w: int, limit: int) -> int | None:
        """Move up to ``limit`` bytes into the pipe: the count, 0 at the end, None if
        nothing is there yet."""
        ...

    async def readable(self) -> None:
        """Return once there is something to read (or the end)."""
        ...


class StreamError(Exception):
    """The stream ended abnormally: the peer's ERROR message, a reset, a lost session."""


class SessionClosed(Exception):
    """The session (the WebSocket) is closed; ``code`` and ``reason`` say why."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason or f"session closed ({code})")
        self.code, self.reason = code, reason


class Session(Protocol):
    """What a stream needs of its session: the window sizes it grants, sending frames,
    background work for the session's lifetime, and being forgotten once it ends."""

    window: int
    max_window: int
    closed: SessionClosed | None

    async def send(self, frame: bytes) -> None: ...

    async def send_data(self, stream: int, payload: bytes | memoryview) -> None: ...

    async def send_spliced(self, stream: int, pipe_r: int, size: int) -> None: ...

    def spawn(self, work: Coroutine[Any, Any, None]) -> None: ...

    def forget(self, sid: int) -> None: ...


class MuxStream:
    """A stream's two directions. Receiving: at most ``window`` bytes are ever buffered,
    because the peer may only send what this side granted; bytes are granted back as
    ``read`` hands them out, and the window doubles (up to the mux's ``max_window``)
    whenever the consumer has emptied the buffer, so a fast path is never held back by
    grants in flight. Sending: ``write`` waits for the peer's grants."""

    def __init__(self, mux: Session, stream_id: int, params: dict[str, Any]) -> None:
        self.mux, self.id, self.params = mux, stream_id, params
        self._chunks: deque[bytes | bytearray] = deque()
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._credit = proto.INITIAL_WINDOW  # bytes we may still send
        self._allowed = proto.INITIAL_WINDOW  # bytes the peer may still send us
        self._unacked = 0  # read by us, not yet granted back
        self.window = mux.window
        """This side's receive window: grows while the consumer keeps up (to max_window)."""
        self._starved = False  # read() waited for bytes since the last grant
        self.eof_in = self.eof_out = False
        self.ended = False
        self.error: str | None = None
        self.finished = asyncio.Event()
        """Set once the peer is done with the stream (CLOSE, ERROR, both EOFs, lost session)."""
        self.exit_code: int | None = None
        self.on_resize: Callable[[int, int], None] | None = None
        self.bytes_in = self.bytes_out = 0
        self._parked: object = None

    def __repr__(self) -> str:
        return f"<MuxStream {self.id} in={self.bytes_in} out={self.bytes_out}>"

    @property
    def buffered(self) -> int:
        return sum(map(len, self._chunks))

    # -- the Pipe interface ------------------------------------------------------------
    async def read(self) -> bytes:
        """The next chunk (a ``bytearray`` where it was read straight off the socket);
        ``b""`` at the end."""
        while not self._chunks:
            if self.eof_in:
                return b""
            if self.error is not None:
                raise StreamError(self.error)
            if self.ended:
                return b""
            self._starved = True
            self._readable.clear()
            await self._readable.wait()
        chunk = self._chunks.popleft()
        self._unacked += len(chunk)
        if self._unacked >= self.window // 2 and not (self.eof_in or self.ended):
            grant, self._unacked = self._unacked, 0
            if self._starved and not self._chunks:
                # The consumer waited for bytes and has drained everything: the window,
                # not the reader, limits this stream.
                grant += self._grow_window()
            self._starved = False
            self._allowed += grant
            with contextlib.suppress(SessionClosed):
                await self.mux.send(proto.window_frame(self.id, grant).encode())
        return cast(bytes, chunk)  # a bytearray serves every consumer here as bytes would

    async def write(self, data: bytes | memoryview) -> None:
        view, offset, size = memoryview(data), 0, len(data)
        while offset < size:
            while self._credit <= 0 and not self.ended:
                self._writable.clear()
                await self._writable.wait()
            self._check_writable()
            n = min(size - offset, self._credit, proto.MAX_PAYLOAD)
            self._credit -= n
            chunk = data if n == size else view[offset : offset + n]
            await self.mux.send_data(self.id, chunk)
            self.bytes_out += n
            offset += n

    async def splice_from(self, source: KernelSource) -> int:
        """Send everything ``source`` yields until its end, moving the bytes through a
        kernel pipe (never through Python) where the session's WebSocket allows it.
        Returns the byte count; the caller half-closes as after ``write``."""
        moved = 0
        pipe_r, pipe_w = open_pipe(proto.MAX_PAYLOAD, nonblocking=True)
        try:
            while True:
                while self._credit <= 0 and not self.ended:
                    self._writable.clear()
                    await self._writable.wait()
                self._check_writable()
                n = source.splice_into(pipe_w, min(self._credit, proto.MAX_PAYLOAD))
                if n is None:
                    await source.readable()
                    continue
                if n == 0:
                    return moved
                self._credit -= n
                await self.mux.send_spliced(self.id, pipe_r, n)
                self.bytes_out += n
                moved += n
        finally:
            os.close(pipe_r)
            os.close(pipe_w)

    async def write_eof(self) -> None:
        if self.eof_out or self.ended:
            return
        self.eof_out = True
        with contextlib.suppress(SessionClosed):
            await self.mux.send(proto.eof_frame(self.id).encode())
        if self.eof_in:
            self._end(None)

    async def close(self) -> None:
        """End the stream in both directions (CLOSE unless it already ended)."""
        if not self.ended:
            self._end(None)
            self._chunks.clear()
            with contextlib.suppress(SessionClosed):
                await self.mux.send(proto.close_frame(self.id).encode())

    async def fail(self, message: str) -> None:
        """End the stream with an ERROR telling the peer why."""
        if not self.ended:
            self._end(message)
            self._chunks.clear()
            with contextlib.suppress(SessionClosed):
                await self.mux.send(proto.error_frame(self.id, message).encode())

    # -- terminal extras ---------------------------------------------------------------
    async def resize(self, rows: int, cols: int) -> None:
        self._check_writable()
        await self.mux.send(proto.resize_frame(self.id, rows, cols).encode())

    async def send_exit(self, code: int) -> None:
        self._check_writable(eof_ok=True)
        await self.mux.send(proto.exit_frame(self.id, code).encode())

    def _check_writable(self, eof_ok: bool = False) -> None:
        if self.ended:
            raise StreamError(self.error or f"stream {self.id} is closed")
        if self.eof_out and not eof_ok:
            raise StreamError(f"stream {self.id}: write after EOF")

    # -- payloads that bypass Python ---------------------------------------------------------
    def park(self, destination: object) -> None:
        """A pump is waiting in :meth:`read` to write to ``destination`` (None: no longer)."""
        self._parked = destination

    def direct_target(self, size: int) -> _DirectSink | None:
        """Where ``size`` payload bytes may go straight (spliced by the channel): the
        parked pump's destination, if nothing is buffered ahead of them and it can take
        direct writes now. The bytes are accounted as received here."""
        target = self._parked
        if target is None or self._chunks or self.eof_in or self.ended or size > self._allowed:
            return None
        direct_fd = getattr(target, "direct_fd", None)
        if direct_fd is None or direct_fd() is None:
            return None
        self._allowed -= size
        self.bytes_in += size
        return _DirectSink(self, direct_fd)

    def _consumed(self, size: int) -> None:
        """``size`` bytes reached the consumer without :meth:`read`: grant them back.
        They went straight to a consumer that was waiting for them, so the window grows
        as in :meth:`read` when the consumer had to wait."""
        self._unacked += size
        if self._unacked >= self.window // 2 and not (self.eof_in or self.ended):
            grant, self._unacked = self._unacked, 0
            grant += self._grow_window()
            self._allowed += grant
            self.mux.spawn(self._grant(grant))

    def _grow_window(self) -> int:
        """Double this side's receive window, up to the session's maximum; the bytes
        added (to be granted with the next WINDOW)."""
        extra = max(0, min(self.window, self.mux.max_window - self.window))
        self.window += extra
        return extra

    async def _grant(self, grant: int) -> None:
        with contextlib.suppress(SessionClosed):
            await self.mux.send(proto.window_frame(self.id, grant).encode())

    # -- frames from the peer (called by the mux) ----------------------------------------
    def grant(self, extra: int) -> None:
        """Allow the peer ``extra`` more bytes (the mux sends the WINDOW frame)."""
        self._allowed += extra

    def on_data(self, payload: bytes | bytearray) -> bool:
        """Buffer a DATA payload; False if it overruns the window the peer was granted."""
        if len(payload) > self._allowed or self.eof_in:
            return False
        self._allowed -= len(payload)
        self.bytes_in += len(payload)
        if payload:
            self._chunks.append(payload)
            self._readable.set()
        return True

    def on_eof(self) -> None:
        self.eof_in = True
        self._readable.set()
        if self.eof_out:
            self._end(None)

    def on_window(self, grant: int) -> None:
        self._credit = min(self._credit + grant, proto.MAX_WINDOW)
        self._writable.set()

    def on_end(self, error: str | None) -> None:
        """The peer sent CLOSE (``error`` None) or ERROR, or the session ended."""
        if not self.ended:
            self._end(error)

    def _end(self, error: str | None) -> None:
        self.ended = True
        self.error = error
        self.finished.set()
        self._readable.set()
        self._writable.set()
        self.mux.forget(self.id)


class _DirectSink:
    """A parked pump's destination, written to by the channel while the pump waits."""

    def __init__(self, stream: MuxStream, direct_fd: Callable[[], int | None]) -> None:
        self.stream, self.direct_fd = stream, direct_fd

    def write(self, data: memoryview) -> int:
        fd = self.direct_fd()
        if fd is None:
            return 0
        try:
            written = os.write(fd, data)
        except OSError:  # full (or broken: the ordinary path will say so)
            written = 0
        self.stream._consumed(written)
        return written

    def splice(self, pipe_r: int, size: int) -> int:
        moved = 0
        fd = self.direct_fd()
        while fd is not None and moved < size:
            try:
                moved += os.splice(pipe_r, fd, size - moved, flags=_SPLICE_FLAGS)
            except OSError:
                break
        self.stream._consumed(moved)
        return moved

    def overflow(self, data: bytes) -> None:
        self.stream._chunks.append(data)
        self.stream._readable.set()
