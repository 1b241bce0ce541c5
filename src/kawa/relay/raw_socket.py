"""A TCP connection held as a plain non-blocking socket (no asyncio transport), so its
received bytes can also be spliced straight into a kernel pipe.

The runner reaches container ports with it: what the container sends goes to the
user's stream through :meth:`~kawa.mux.stream.MuxStream.splice_from` without entering
Python; what the user sends is written with the event loop's ``sock_sendall``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

from kawa.protocol.streams import MAX_PAYLOAD


class RawSocketPipe:
    """A connected socket as a :class:`~kawa.relay.pipe.Pipe` and a kernel source."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self._loop = asyncio.get_running_loop()

    # -- Pipe ------------------------------------------------------------------------
    async def read(self) -> bytes:
        return await self._loop.sock_recv(self.sock, MAX_PAYLOAD)

    async def write(self, data: bytes) -> None:
        await self._loop.sock_sendall(self.sock, data)

    async def write_eof(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    async def close(self) -> None:
        self.sock.close()

    def abort(self) -> None:
        """Drop the connection at once (the peer sees a reset)."""
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        self.sock.close()

    # -- kernel source ---------------------------------------------------------------
    def splice_into(self, pipe_w: int, limit: int) -> int | None:
        try:
            return os.splice(
                self.sock.fileno(), pipe_w, limit, flags=os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
            )
        except BlockingIOError:
            return None

    async def readable(self) -> None:
        ready: asyncio.Future[None] = self._loop.create_future()
        fd = self.sock.fileno()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        self._loop.add_reader(fd, wake)
        try:
            await ready
        finally:
            self._loop.remove_reader(fd)

    async def splice_to(self, dst: object) -> int | None:
        """Send everything this socket receives to ``dst`` through the kernel, if ``dst``
        takes a kernel source (``splice_from``, as a multiplexed stream does); None
        (nothing done) otherwise."""
        splice_from = getattr(dst, "splice_from", None)
        if splice_from is None:
            return None
        moved: int = await splice_from(self)
        return moved


def splice_available() -> bool:
    return hasattr(os, "splice")


async def connect_raw(
    host: str, port: int, timeout: float = 10.0, sock: socket.socket | None = None
) -> RawSocketPipe:
    """A TCP connection to ``host:port`` as a :class:`RawSocketPipe` (made with ``sock``,
    a fresh non-blocking socket, when given: one from another network namespace)."""
    loop = asyncio.get_running_loop()
    if sock is None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
    try:
        await asyncio.wait_for(loop.sock_connect(sock, (host, port)), timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        sock.close()
        raise
    return RawSocketPipe(sock)
