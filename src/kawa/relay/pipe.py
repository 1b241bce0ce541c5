"""The relay primitive: two byte pipes joined with backpressure, half-close and clean
teardown (modelled on asyncssh's forwarder, on asyncio streams instead of protocols).

A :class:`Pipe` is anything that reads chunks and writes them with flow control: a TCP
connection (:class:`SocketPipe`), a multiplexed stream (:class:`~kawa.mux.stream.MuxStream`),
a terminal, a WebSocket of frames. :func:`relay` copies both ways until both directions
have ended. Each ``write`` waits until the destination can take more, so at most one
chunk per direction is held here: a slow reader slows the writer and memory stays
bounded by the pipes' own buffers.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, cast

from kawa.protocol.streams import MAX_PAYLOAD

CLOSE_TIMEOUT = 5.0


class Pipe(Protocol):
    async def read(self) -> bytes:
        """The next chunk; ``b""`` once the other end will send nothing more."""
        ...

    async def write(self, data: bytes) -> None:
        """Write ``data``, returning once the destination has room for more."""
        ...

    async def write_eof(self) -> None:
        """Half-close: nothing more will be written; reading goes on."""
        ...

    async def close(self) -> None:
        """Release the pipe (idempotent; never raises)."""
        ...


@dataclass
class Traffic:
    """Byte counters of one relay."""

    a_to_b: int = 0
    b_to_a: int = 0


async def pump(src: Pipe, dst: Pipe, traffic: Traffic, forward: bool, eof: bool = True) -> None:
    """Copy ``src`` into ``dst`` until ``src`` ends, then half-close ``dst`` (if ``eof``).

    A source that can move its bytes to ``dst`` in the kernel (``splice_to``, see
    :mod:`kawa.relay.raw_socket`) does so instead of handing chunks through here.
    """
    splice_to = getattr(src, "splice_to", None)
    spliced = await splice_to(dst) if splice_to is not None else None
    if spliced is not None:
        if forward:
            traffic.a_to_b += spliced
        else:
            traffic.b_to_a += spliced
    park = getattr(src, "park", None)  # a stream may write to dst while we wait
    while spliced is None:
        if park is not None:
            park(dst)
        try:
            chunk = await src.read()
        finally:
            if park is not None:
                park(None)
        if not chunk:
            break
        await dst.write(chunk)
        if forward:
            traffic.a_to_b += len(chunk)
        else:
            traffic.b_to_a += len(chunk)
    if eof:
        await dst.write_eof()


async def relay(a: Pipe, b: Pipe, *, ends_with: Pipe | None = None, close: bool = True) -> Traffic:
    """Copy ``a`` → ``b`` and ``b`` → ``a`` concurrently.

    An end of input on one side is passed on as a half-close and the other direction
    keeps going; the relay returns when both directions are done. With ``ends_with``,
    it returns as soon as that pipe's input ends, and that end is left to the caller
    to pass on (a terminal sends its exit status first). The first error (a reset connection,
    a failed stream) stops both directions and is raised. Both pipes are closed on the
    way out unless ``close`` is false; cancelling the relay cancels both directions.
    No task outlives the call.
    """
    traffic = Traffic()
    forward = asyncio.create_task(pump(a, b, traffic, True, ends_with is not a))
    backward = asyncio.create_task(pump(b, a, traffic, False, ends_with is not b))
    final = {a: forward, b: backward}.get(ends_with) if ends_with is not None else None
    try:
        pending = {forward, backward}
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                error = task.exception()
                if error is not None:
                    raise error
            if final is not None and final.done():
                break
    finally:
        for task in (forward, backward):
            task.cancel()
        await asyncio.gather(forward, backward, return_exceptions=True)
        if close:
            await asyncio.gather(a.close(), b.close(), return_exceptions=True)
    return traffic


class Inbox:
    """Received chunks kept as they arrived (no merging copy), with flow control both
    ways: past ``limit`` waiting bytes the source is paused (:meth:`pause_source`) and
    resumed once half has been taken; ``writable`` follows the sink's pause/resume.
    The callbacks are asyncio's protocol ones, which asyncssh's sessions share."""

    def __init__(self, limit: int = MAX_PAYLOAD) -> None:
        self.limit = limit
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.eof = False
        self.paused = False
        self.error: BaseException | None = None
        self.readable = asyncio.Event()
        self.writable = asyncio.Event()
        self.writable.set()
        self.lost = asyncio.Event()

    def pause_source(self) -> bool:
        """Stop the source delivering; False if it cannot be paused now."""
        raise NotImplementedError

    def resume_source(self) -> None:
        raise NotImplementedError

    # -- callbacks ----------------------------------------------------------------------
    def data_received(self, data: bytes, *_: Any) -> None:
        self.chunks.append(data)
        self.size += len(data)
        self.readable.set()
        if self.size > self.limit and not self.paused:
            self.paused = self.pause_source()

    def eof_received(self) -> bool:
        self.eof = True
        self.readable.set()
        return True  # keep the connection for the other direction (half-close)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.eof = True
        self.error = exc
        for event in (self.readable, self.writable, self.lost):
            event.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    # -- the reading side ---------------------------------------------------------------
    async def take(self, merge_up_to: int = 0) -> bytes:
        """The next chunk (``b""`` at the end; ConnectionResetError if the connection
        broke); with ``merge_up_to``, small waiting chunks joined up to that many bytes."""
        while not self.chunks:
            if self.eof:
                if self.error is not None:
                    raise ConnectionResetError(str(self.error))
                return b""
            self.readable.clear()
            await self.readable.wait()
        chunks = self.chunks
        data = chunks.popleft()
        if chunks and len(data) < merge_up_to:
            parts, size = [data], len(data)
            while chunks and size + len(chunks[0]) <= merge_up_to:
                size += len(chunks[0])
                parts.append(chunks.popleft())
            data = b"".join(parts)
        self.size -= len(data)
        if self.paused and self.size <= self.limit // 2:
            self.paused = False
            self.resume_source()
        return data


class _Buffered(Inbox, asyncio.Protocol):
    """A socket's :class:`Inbox`: reading is paused on the transport."""

    def __init__(self, limit: int = MAX_PAYLOAD) -> None:
        super().__init__(limit)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def pause_source(self) -> bool:
        if self.transport is None:
            return False
        self.transport.pause_reading()
        return True

    def resume_source(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()


class SocketPipe:
    """A TCP or Unix socket connection as a pipe."""

    def __init__(self, transport: asyncio.BaseTransport, protocol: _Buffered) -> None:
        self.protocol, self.transport = protocol, cast(asyncio.Transport, transport)
        protocol.transport = self.transport  # uvloop calls connection_made a little later

    async def read(self) -> bytes:
        return await self.protocol.take()

    def direct_fd(self) -> int | None:
        """The socket's descriptor, for writing past the transport: only while the
        transport has nothing buffered (so order is kept) and is not closing."""
        transport = self.transport
        if transport.is_closing() or transport.get_write_buffer_size():
            return None
        sock = transport.get_extra_info("socket")
        return sock.fileno() if sock is not None else None

    def unread(self, data: bytes) -> None:
        """Put ``data`` back in front of what ``read`` returns next."""
        if data:
            self.protocol.chunks.appendleft(data)
            self.protocol.size += len(data)

    async def write(self, data: bytes) -> None:
        if self.transport.is_closing():
            raise ConnectionResetError("the connection is closed")
        self.transport.write(data)
        await self.protocol.writable.wait()

    async def write_eof(self) -> None:
        if self.transport.can_write_eof() and not self.transport.is_closing():
            with contextlib.suppress(OSError, RuntimeError):
                self.transport.write_eof()

    async def close(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.protocol.lost.wait(), CLOSE_TIMEOUT)
        self.transport.abort()  # a peer that never read its last bytes

    def abort(self) -> None:
        """Drop the connection at once (the peer sees a reset)."""
        self.transport.abort()


async def open_socket(
    host: str, port: int, timeout: float = 10.0, sock: socket.socket | None = None
) -> SocketPipe:
    """A TCP connection to ``host:port`` (made with ``sock``, a fresh non-blocking
    socket, when given: one from another network namespace)."""
    loop = asyncio.get_running_loop()
    if sock is not None:
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (host, port)), timeout)
        except BaseException:
            sock.close()
            raise
        return await adopt_socket(sock)
    made = await asyncio.wait_for(loop.create_connection(_Buffered, host, port), timeout)
    return SocketPipe(*made)


async def adopt_socket(sock: socket.socket) -> SocketPipe:
    """An already connected socket (accepted, passed, dialed) as a pipe."""
    loop = asyncio.get_running_loop()
    return SocketPipe(*await loop.connect_accepted_socket(_Buffered, sock))


async def open_unix_socket(path: str, timeout: float = 10.0) -> SocketPipe:
    loop = asyncio.get_running_loop()
    made = await asyncio.wait_for(loop.create_unix_connection(_Buffered, path), timeout)
    return SocketPipe(*made)


async def serve_sockets(
    handle: Callable[[SocketPipe], Coroutine[Any, Any, None]], host: str, port: int
) -> asyncio.Server:
    """Listen on ``host:port`` and run ``handle`` in a task for each connection."""
    loop = asyncio.get_running_loop()
    handlers: set[asyncio.Task[None]] = set()

    class Accepted(_Buffered):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            task = loop.create_task(handle(SocketPipe(transport, self)))
            handlers.add(task)
            task.add_done_callback(handlers.discard)

    return await loop.create_server(Accepted, host, port)
