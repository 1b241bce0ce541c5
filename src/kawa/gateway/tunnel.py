"""A gateway channel joined to the runner's tunnel socket, callback to callback.

The relay primitive (:func:`kawa.relay.pipe.relay`) moves each chunk through a
coroutine, an inbox and an event per direction. Between an SSH channel and a raw tunnel
both ends already have asyncio-style callbacks, so a :class:`TunnelJoint` hands bytes
from one side's callback straight to the other side's write (measured in
docs/benchmarks.md). Backpressure is the two sides pausing each other: the
socket's send buffer past its high-water mark pauses reading from the channel
(asyncssh then grants the client no more window), and the channel's send buffer past
asyncssh's high-water mark (the client's window is used up) pauses reading from the
socket. An end of input is passed on as a half-close; the joint is over once both the
channel and the socket are closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import TYPE_CHECKING, cast

import asyncssh

if TYPE_CHECKING:
    from kawa.gateway.channel import ChannelSession

CLOSE_TIMEOUT = 5.0
"""Seconds a closed channel's last bytes may take to leave the socket before it is reset."""


class TunnelJoint(asyncio.Protocol):
    """The tunnel socket's protocol, and the joined channel's way out."""

    def __init__(self, session: ChannelSession) -> None:
        self.session = session
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.out: list[bytes] = []
        self.socket_closed = self.loop.create_future()
        self.channel_closed = self.loop.create_future()
        self.ended: set[str] = set()
        """The sides whose input has ended ("channel", "socket")."""

    async def join(self, sock: socket.socket) -> None:
        """Adopt the connected ``sock``, take over the session (what it received so
        far goes first) and carry bytes until both the socket and the channel are
        closed. Cancelled, it resets both."""
        try:
            await self.loop.connect_accepted_socket(lambda: self, sock)
        except BaseException:
            sock.close()
            raise
        session = self.session
        self.out = list(session.chunks)  # received before the join: first out
        session.chunks.clear()
        session.size = 0
        session.joint = self
        if not session.writable.is_set():  # the client's window filled before the join
            self.channel_paused(True)
        if session.lost.is_set():
            self.channel_lost()
        elif session.eof:
            self.channel_eof()
        else:
            if session.paused:  # what it delivers now joins the early bytes, in order
                session.paused = False
                session.resume_source()
            self.flush()  # a pause this causes stays in force
        try:
            await asyncio.gather(
                asyncio.shield(self.socket_closed), asyncio.shield(self.channel_closed)
            )
        finally:
            if not (self.socket_closed.done() and self.channel_closed.done()):
                self._reset()

    def _reset(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        if self.session.chan is not None:
            with contextlib.suppress(OSError, asyncssh.Error):
                self.session.chan.abort()

    # -- channel -> socket (called by the session) --------------------------------------
    def from_channel(self, data: bytes) -> None:
        """Channel bytes for the socket: written once per turn of the event loop, so the
        packets of one read from the client leave in one system call."""
        if not self.out:
            self.loop.call_soon(self.flush)
        self.out.append(data)

    def flush(self) -> None:
        out, self.out = self.out, []
        transport = self.transport
        if out and transport is not None and not transport.is_closing():
            transport.writelines(out)

    def channel_eof(self) -> None:
        self.flush()
        transport = self.transport
        if transport is not None and not transport.is_closing():
            with contextlib.suppress(OSError, RuntimeError):
                transport.write_eof()
        self._input_ended("channel")

    def _input_ended(self, side: str) -> None:
        """Both ways done: close both (each after the bytes it still holds)."""
        self.ended.add(side)
        if len(self.ended) == 2:
            self._close_socket()
            if self.session.chan is not None:
                with contextlib.suppress(OSError, asyncssh.Error):
                    self.session.chan.close()

    def _close_socket(self) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.close()
            self.loop.call_later(CLOSE_TIMEOUT, transport.abort)  # a peer that never reads

    def channel_lost(self) -> None:
        self.flush()
        if not self.channel_closed.done():
            self.channel_closed.set_result(None)
        self._close_socket()

    def channel_paused(self, paused: bool) -> None:
        """asyncssh's send buffer for the channel is over (or back under) its mark."""
        transport = self.transport
        if transport is not None and not transport.is_closing():
            if paused:
                transport.pause_reading()
            else:
                transport.resume_reading()

    # -- socket -> channel (the socket's protocol) --------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are no subclasses

    def data_received(self, data: bytes) -> None:
        chan = self.session.chan
        if chan is None or chan.is_closing():
            return  # the client closed the channel: nowhere to go; its close ends this side
        try:
            self.session.send(data)
        except (OSError, asyncssh.Error):
            if self.transport is not None:
                self.transport.abort()

    def eof_received(self) -> bool:
        chan = self.session.chan
        if chan is not None:
            with contextlib.suppress(OSError, asyncssh.Error):
                chan.write_eof()
        self._input_ended("socket")
        return True  # the other direction goes on

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.socket_closed.done():
            self.socket_closed.set_result(None)
        chan = self.session.chan
        if chan is not None:
            with contextlib.suppress(OSError, asyncssh.Error):
                chan.close()  # after what asyncssh still holds for the client

    def pause_writing(self) -> None:
        if self.session.chan is not None:
            self.session.chan.pause_reading()

    def resume_writing(self) -> None:
        if self.session.chan is not None:
            self.session.chan.resume_reading()
