"""A ``direct-tcpip`` channel of the SSH gateway as a relay pipe, and the channel and
cipher parameters the gateway serves with (tuned for bulk transfers, measured in
docs/benchmarks.md)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import asyncssh

from kawa.gateway.tunnel import TunnelJoint
from kawa.protocol import streams as proto
from kawa.relay.pipe import Inbox

if TYPE_CHECKING:
    from kawa.gateway.asyncssh_fast_path import DataPackets

CIPHERS = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"]
"""Ciphers of the outer SSH layer (client <-> gateway), which asyncssh decrypts and
re-encrypts. An OpenSSH client takes the first cipher of *its* list that the server
offers, and its default list starts with chacha20-poly1305 (then the AES-CTR ones), which
cost asyncssh ~4x AES-GCM's time per byte; so only AES-GCM (AES-NI) is offered. Every
OpenSSH since 6.2 has it. The inner layer, to the VPS's own sshd, is end to end and keeps
the client's choice."""
WINDOW = 8 * 1024 * 1024
"""Bytes the client may have in flight to the gateway on one channel (asyncssh's default
is 2 MiB): also the most a paused channel buffers here."""


class ChannelSession(Inbox, asyncssh.SSHTCPSession[bytes]):
    """One ``direct-tcpip`` channel as a relay pipe, on asyncssh's session callbacks.

    Cheaper per packet than asyncssh's SSHReader/SSHWriter streams: received packets are
    kept as they arrive and handed on several at a time (:class:`~kawa.relay.pipe.Inbox`).
    Backpressure both ways: once more than ``limit`` bytes wait here, delivery from the
    channel is paused (asyncssh then grants the client no more window, so at most the
    channel window is buffered on top), and a write waits while asyncssh's send buffer is
    above its high-water mark. Joined to a socket (:meth:`join`), the callbacks go to the
    joint instead and the inbox is no longer used.
    """

    def __init__(
        self, start: Callable[[ChannelSession], None], limit: int = proto.MAX_PAYLOAD
    ) -> None:
        super().__init__(limit)
        self.start = start
        self.chan: asyncssh.SSHTCPChannel[bytes] | None = None
        self.packets: DataPackets | None = None
        """Seals the channel's data packets (set where the connection is on the fast path
        through asyncssh's internals; None: the data goes through asyncssh's own path)."""
        self.joint: TunnelJoint | None = None
        """Set once the channel is joined to a tunnel socket (:meth:`join`)."""

    def connection_made(self, chan: asyncssh.SSHTCPChannel[bytes]) -> None:
        self.chan = chan
        self.start(self)  # the relay begins once the channel is open

    # -- asyncssh's callbacks: to the joint once joined, else to the inbox ---------------
    def data_received(self, data: bytes, *_: Any) -> None:
        if self.joint is not None:
            self.joint.from_channel(data)
        else:
            super().data_received(data)

    def eof_received(self) -> bool:
        if self.joint is not None:
            self.joint.channel_eof()
            return True
        return super().eof_received()

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        if self.joint is not None:
            self.joint.channel_lost()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.joint is not None:
            self.joint.channel_paused(True)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.joint is not None:
            self.joint.channel_paused(False)

    def send(self, data: bytes) -> None:
        """Write ``data`` to the client, sealed here where the connection allows."""
        if self.chan is None or self.lost.is_set():
            return
        if self.packets is not None:
            self.packets.write(data)
        else:
            self.chan.write(data)

    async def join(self, sock: socket.socket) -> None:
        """Carry the channel to and from a connected socket until both are closed
        (:class:`~kawa.gateway.tunnel.TunnelJoint`), in place of :func:`relay`."""
        await TunnelJoint(self).join(sock)

    def pause_source(self) -> bool:
        if self.chan is None:
            return False
        self.chan.pause_reading()
        return True

    def resume_source(self) -> None:
        if self.chan is not None:
            self.chan.resume_reading()

    async def read(self) -> bytes:
        return await self.take(merge_up_to=proto.MAX_PAYLOAD)  # SSH packets → one frame

    async def write(self, data: bytes) -> None:
        if self.chan is None or self.lost.is_set():
            raise ConnectionResetError("the SSH channel is closed")
        self.send(data)
        await self.writable.wait()

    async def write_eof(self) -> None:
        if self.chan is not None and not self.lost.is_set():
            with contextlib.suppress(OSError, asyncssh.Error):
                self.chan.write_eof()

    async def close(self) -> None:
        if self.chan is not None:
            with contextlib.suppress(OSError, asyncssh.Error):
                self.chan.close()
