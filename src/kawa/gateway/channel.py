"""The SSH gateway's channels and connection plumbing, tuned for bulk transfers
(measured in docs/benchmarks.md, issue 5): the ciphers it offers, a ``direct-tcpip``
channel as a relay pipe on asyncssh's session callbacks, and :class:`Framing`, which
trims asyncssh's per-packet costs by reaching into its internals (asyncssh is pinned;
tests/unit/test_ssh_gateway_framing.py fails if those internals move)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from typing import Any, cast

import asyncssh

from kawa.gateway import received_packets
from kawa.gateway.asyncssh_fast_path import packet_log_on
from kawa.gateway.received_packets import ReceivedPackets
from kawa.gateway.sent_packets import DataPackets
from kawa.gateway.tunnel import TunnelJoint
from kawa.protocol import streams as proto
from kawa.relay.pipe import Inbox

log = logging.getLogger(__name__)

MSG_IGNORE = 2
_EMPTY_STRING = asyncssh.packet.String(b"")


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
READ_SPLIT = 64 * 1024
"""Largest piece of received bytes handed to asyncssh at once (see :class:`Framing`)."""


class Framing(asyncio.Protocol):
    """Sits between an asyncssh connection and its socket to cut asyncssh's per-packet
    costs in bulk transfers (measured in docs/benchmarks.md, issue 5):

    - writes: asyncssh writes every packet on its own (a system call each, and an empty
      ``SSH_MSG_IGNORE`` before every data packet); here the packets of one event-loop
      turn go out in one ``writelines``, and the empty IGNORE packets are dropped (they
      are padding against CBC-mode attacks; the gateway offers AES-GCM only);
    - reads: the channel data, window and ignore packets of registered channels are
      opened by :attr:`received` (:mod:`kawa.gateway.received_packets`); what goes on
      to asyncssh, which keeps unparsed input in ``bytes`` and copies the rest of it
      after every packet (quadratic in the size of a read; uvloop reads up to 256 KiB),
      is handed on in pieces of at most :data:`READ_SPLIT` bytes.

    It relies on asyncssh internals (its connection's ``_transport`` and ``send_packet``,
    asyncssh is pinned); when they are not there, the connection is left as it is.
    """

    def __init__(self, conn: asyncssh.SSHServerConnection, transport: asyncio.Transport):
        self.conn, self.transport = conn, transport
        self.loop = asyncio.get_running_loop()
        self.pending: list[bytes | bytearray] = []
        self.scheduled = False
        self.received: ReceivedPackets | None = None
        """Opens channel data and window packets past asyncssh (set by :meth:`install`)."""

    @classmethod
    def install(cls, conn: asyncssh.SSHServerConnection) -> Framing | None:
        transport = getattr(conn, "_transport", None)
        send_packet = getattr(conn, "send_packet", None)
        needs = ("write", "writelines", "set_protocol", "is_closing", "close", "abort")
        if (
            transport is None
            or send_packet is None
            or not all(hasattr(transport, n) for n in needs)
        ):
            log.debug("asyncssh connection without the expected internals: not framed")
            return None
        framing = cls(conn, cast(asyncio.Transport, transport))  # uvloop's are no subclasses
        conn._transport = framing  # type: ignore[assignment]
        transport.set_protocol(framing)

        def no_empty_ignore(pkttype: int, *args: bytes, handler: Any = None) -> None:
            if pkttype == MSG_IGNORE and args == (_EMPTY_STRING,):
                return
            send_packet(pkttype, *args, handler=handler)

        conn.send_packet = no_empty_ignore  # type: ignore[method-assign]
        framing.received = received_packets.install(conn, framing.to_asyncssh)
        return framing

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
        if self.received is not None:
            self.received.feed(data)
        else:
            self.to_asyncssh(data)

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


def _no_packet_log(*args: Any, **kwargs: Any) -> None:
    pass


def quiet_packet_log(chan: asyncssh.SSHTCPChannel[bytes]) -> None:
    """Skip asyncssh's per-packet debug log of a data channel when it is off: asyncssh
    formats each packet's log line (type name, size) before it checks the level, ~5% of
    the gateway's time in a download. Its packet log is written from debug level 3 on."""
    if not packet_log_on():
        chan.log_sent_packet = _no_packet_log  # type: ignore[method-assign]
        chan.log_received_packet = _no_packet_log  # type: ignore[method-assign]


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
        """Seals the channel's data packets (set by the gateway where it can)."""
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
