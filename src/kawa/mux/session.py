"""Many streams over one WebSocket (the framing of :mod:`kawa.protocol.streams`).

One reader task (:meth:`Mux.run`) decodes every frame and hands it to its stream without
ever waiting on a stream's consumer: each stream's buffer is bounded by the window it
granted, so a slow stream never holds up the others. Sends share one FIFO lock, so
streams take turns on the WebSocket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from kawa.mux.stream import MuxStream, SessionClosed, StreamError
from kawa.protocol import streams as proto
from kawa.protocol.streams import FrameError, FrameType
from kawa.ws.channel import Channel, ChannelClosed, DirectSink

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 2 * 1024 * 1024
"""Bytes a new stream may have in flight towards this side."""
DEFAULT_MAX_WINDOW = 32 * 1024 * 1024
"""How far a stream's window may grow while its consumer keeps up (the bound on what
one stream ever buffers here)."""
_REMEMBER = 4096  # closed ids whose late frames are dropped quietly

Acceptor = Callable[[MuxStream], Awaitable[None]]


class Mux:
    """A multiplexed session over ``channel``.

    The side that opens streams (the client) calls :meth:`open`; the side that serves
    them passes ``accept``, run as one task per OPEN and cancelled when the session ends.
    """

    def __init__(
        self,
        channel: Channel,
        *,
        accept: Acceptor | None = None,
        window: int = DEFAULT_WINDOW,
        max_window: int = DEFAULT_MAX_WINDOW,
    ) -> None:
        if not proto.INITIAL_WINDOW <= window <= proto.MAX_WINDOW:
            raise ValueError(f"window must be {proto.INITIAL_WINDOW}..{proto.MAX_WINDOW}")
        self.channel, self.accept, self.window = channel, accept, window
        self.max_window = min(max(window, max_window), proto.MAX_WINDOW)
        self.background: set[asyncio.Task[None]] = set()
        channel.route_direct(self._direct_sink)  # where it can, payloads bypass Python
        self.streams: dict[int, MuxStream] = {}
        self._gone: deque[int] = deque(maxlen=_REMEMBER)
        self._gone_set: set[int] = set()
        self._next_id = 1
        self._lock = asyncio.Lock()
        self._handlers: set[asyncio.Task[None]] = set()
        self._ready = asyncio.Event()
        self.ready_info: dict[str, Any] = {}
        self.closed: SessionClosed | None = None
        self.ended = asyncio.Event()

    # -- sending -------------------------------------------------------------------------
    async def send(self, frame: bytes) -> None:
        await self._send((frame,))

    async def send_data(self, stream: int, payload: bytes | memoryview) -> None:
        """Send a DATA frame without copying ``payload`` into it."""
        await self._send((proto.data_header(stream), payload))

    async def send_spliced(self, stream: int, pipe_r: int, size: int) -> None:
        """Send a DATA frame whose ``size`` payload bytes wait in a kernel pipe."""
        if self.closed is not None:
            raise self.closed
        header = proto.data_header(stream)
        async with self._lock:
            try:
                await self.channel.send_spliced((header,), pipe_r, size)
            except ChannelClosed as exc:
                self._closed(exc.code, exc.reason)
                raise SessionClosed(exc.code, exc.reason) from None

    async def _send(self, parts: tuple[bytes | memoryview, ...]) -> None:
        if self.closed is not None:
            raise self.closed
        async with self._lock:
            try:
                await self.channel.send_parts(parts)
            except ChannelClosed as exc:
                self._closed(exc.code, exc.reason)
                raise SessionClosed(exc.code, exc.reason) from None

    async def open(self, params: dict[str, Any]) -> MuxStream:
        """Open a stream to the target described by ``params``."""
        if self._next_id > proto.MAX_STREAM_ID:
            raise StreamError("this session has used up its stream ids")
        stream = self._register(self._next_id, params)
        self._next_id += 1
        await self.send(proto.open_frame(stream.id, params).encode())
        await self._grow(stream)
        return stream

    async def ready(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait for the far end's READY; SessionClosed if the session ends first."""
        waiter = asyncio.ensure_future(self._ready.wait())
        ender = asyncio.ensure_future(self.ended.wait())
        try:
            await asyncio.wait(
                {waiter, ender}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            waiter.cancel()
            ender.cancel()
        if self._ready.is_set():
            return self.ready_info
        if self.closed is not None:
            raise self.closed
        raise SessionClosed(proto.CLOSE_INTERNAL, "no READY from the far end in time")

    async def close(self, code: int = proto.CLOSE_NORMAL, reason: str = "") -> None:
        self._closed(code, reason)
        await self.channel.close(code, reason)

    # -- receiving -----------------------------------------------------------------------
    async def run(self) -> None:
        """Read frames until the session ends; then end every stream and handler."""
        try:
            while True:
                message = await self.channel.recv()
                await self._dispatch(proto.decode(message))
        except ChannelClosed as exc:
            self._closed(exc.code, exc.reason)
        except FrameError as exc:
            log.warning("closing a stream session: %s", exc.reason)
            await self.close(exc.code, exc.reason)
        finally:
            self._closed(proto.CLOSE_GOING_AWAY, "session ended")
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _dispatch(self, frame: proto.Frame) -> None:
        kind, sid = frame.type, frame.stream
        if kind is FrameType.READY:
            try:
                self.ready_info = frame.params()
            except ValueError as exc:
                raise FrameError(f"READY: {exc}") from None
            self._ready.set()
            return
        stream = self.streams.get(sid)
        if kind is FrameType.OPEN:
            await self._accept(frame, stream)
        elif stream is None:
            if kind not in (FrameType.CLOSE, FrameType.ERROR, FrameType.WINDOW) and (
                sid not in self._gone_set
            ):
                await self.send(proto.error_frame(sid, f"unknown stream id {sid}").encode())
        elif kind is FrameType.DATA:
            if not stream.on_data(frame.payload):
                await stream.fail(f"stream {sid}: DATA beyond the granted window or after EOF")
        elif kind is FrameType.EOF:
            stream.on_eof()
        elif kind is FrameType.CLOSE:
            stream.on_end(None)
        elif kind is FrameType.ERROR:
            stream.on_end(frame.message())
        elif kind is FrameType.WINDOW:
            stream.on_window(frame.increment())
        elif kind is FrameType.RESIZE:
            if stream.on_resize is not None:
                stream.on_resize(*frame.size())
        elif kind is FrameType.EXIT:
            stream.exit_code = frame.exit_code()

    async def _accept(self, frame: proto.Frame, existing: MuxStream | None) -> None:
        sid = frame.stream
        if self.accept is None:
            await self.send(proto.error_frame(sid, "this side does not accept streams").encode())
            return
        if existing is not None or sid in self._gone_set:
            await self.send(proto.error_frame(sid, f"stream id {sid} was already used").encode())
            return
        try:
            params = frame.params()
        except ValueError as exc:
            await self.send(proto.error_frame(sid, f"bad OPEN: {exc}").encode())
            return
        stream = self._register(sid, params)
        task = asyncio.create_task(self._serve(stream), name=f"stream-{sid}")
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _serve(self, stream: MuxStream) -> None:
        assert self.accept is not None
        try:
            await self._grow(stream)  # here, not in the reader: it never waits on a send
            await self.accept(stream)
        except (StreamError, SessionClosed, ConnectionError):
            pass
        except Exception as exc:
            log.exception("stream %s failed", stream.id)
            await stream.fail(f"internal error: {exc}")
        finally:
            await stream.close()

    def _direct_sink(self, prefix: bytes, length: int) -> DirectSink | None:
        """Where a large DATA frame's payload may go straight: its stream's destination,
        when that stream's consumer is idle (:meth:`MuxStream.direct_target`)."""
        kind, flags, sid = proto.HEADER.unpack(prefix)
        size = length - proto.HEADER_SIZE
        if kind != FrameType.DATA or flags or sid == proto.SESSION or size > proto.MAX_PAYLOAD:
            return None  # the ordinary path reports whatever is wrong with it
        stream = self.streams.get(sid)
        return stream.direct_target(size) if stream is not None else None

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in the background for as long as the session lives."""
        task = asyncio.ensure_future(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    # -- bookkeeping ---------------------------------------------------------------------
    def _register(self, sid: int, params: dict[str, Any]) -> MuxStream:
        stream = MuxStream(self, sid, params)
        if self.closed is not None:
            stream.on_end(f"session closed: {self.closed.reason or self.closed.code}")
        else:
            self.streams[sid] = stream
        return stream

    async def _grow(self, stream: MuxStream) -> None:
        extra = self.window - proto.INITIAL_WINDOW
        if extra > 0:
            stream.grant(extra)
            with contextlib.suppress(SessionClosed):
                await self.send(proto.window_frame(stream.id, extra).encode())

    def forget(self, sid: int) -> None:
        if self.streams.pop(sid, None) is not None:
            if len(self._gone) == self._gone.maxlen:
                self._gone_set.discard(self._gone[0])
            self._gone.append(sid)
            self._gone_set.add(sid)

    def _closed(self, code: int, reason: str) -> None:
        if self.closed is None:
            self.closed = SessionClosed(code, reason)
        if not self.ended.is_set():
            self.ended.set()
            why = f"session closed: {reason or code}"
            for stream in list(self.streams.values()):
                stream.on_end(why)
