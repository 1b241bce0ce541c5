"""Channel data packets of the SSH gateway, built and sealed with one copy.

asyncssh builds each ``SSH_MSG_CHANNEL_DATA`` packet by concatenation (about ten copies of
its payload, and a fresh AES key schedule per packet); in a download through the gateway
that was most of its time (docs/benchmarks.md, issue 5). While the connection is in the
steady state (keys exchanged, AES-GCM, no compression, no rekey due), a
:class:`DataPackets` writes each packet itself: the payload is copied once, from the
relay's chunk, into the packet buffer, which is sealed in place with ``encrypt_into``.
:func:`install` hands it the channel's send-buffer flush (asyncssh calls it when the
client opens its window); :meth:`DataPackets.write` is the channel write the gateway
uses. In any other state the data goes through asyncssh, as before. It reads and
updates asyncssh's connection state (sequence number, GCM invocation counter, rekey byte
count) as asyncssh's ``send_packet`` does; asyncssh is pinned and
tests/unit/test_ssh_gateway_framing.py checks the result against a real client, across
key re-exchanges.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import asyncssh
from asyncssh.encryption import GCMEncryption

from kawa.gateway.asyncssh_fast_path import GcmKey, missing, packet_log_on

log = logging.getLogger(__name__)

MSG_CHANNEL_DATA = 94
_TAG_ROOM = bytes(16)  # where AES-GCM's tag is written
_POOL = 64 * 1024
_NEEDS = {
    "conn": (
        "_send_encryption",
        "_compressor",
        "_kex_complete",
        "_auth_complete",
        "_rekey_bytes_sent",
        "_rekey_bytes",
        "_rekey_seconds",
        "_rekey_time",
        "_send_seq",
        "_send_enchdrlen",
        "_send_blocksize",
        "_transport",
    ),
    "chan": (
        "_flush_send_buf",
        "_send_buf",
        "_send_buf_len",
        "_send_window",
        "_send_pktsize",
        "_send_chan",
        "_send_state",
    ),
}


class DataPackets:
    """Sends one channel's queued data as sealed packets while the connection allows."""

    def __init__(self, conn: Any, chan: Any) -> None:
        self.conn, self.chan = conn, chan
        self.fallback = chan._flush_send_buf
        self._key = GcmKey()
        self._pool, self._pool_at = b"", 0
        self.packets = 0
        """Data packets sent here (the rest went through asyncssh)."""

    def steady(self) -> Any:
        """asyncssh's GCM cipher object when a data packet may be sent here, else None."""
        conn = self.conn
        enc = conn._send_encryption
        if (
            not isinstance(enc, GCMEncryption)
            or conn._transport is None
            or conn._compressor is not None
            or not (conn._kex_complete and conn._auth_complete)
            or conn._rekey_bytes_sent >= conn._rekey_bytes
            or (conn._rekey_seconds and time.monotonic() >= conn._rekey_time)
            or self.chan._send_chan is None
        ):
            return None
        return enc._cipher

    def write(self, data: bytes) -> None:
        """Write ``data`` on the channel: sealed straight from it as far as the window
        goes when nothing waits in asyncssh's send buffer; the rest through asyncssh."""
        chan = self.chan
        view = memoryview(data)
        sent = self._seal_from(view) if chan._send_state == "open" and not chan._send_buf else 0
        if sent < len(view):
            chan.write(view[sent:])  # copied into asyncssh's buffer, sent as window opens

    def flush(self) -> None:
        chan = self.chan
        while chan._send_buf:
            buf, datatype = chan._send_buf[0]
            if datatype is not None:
                break
            with memoryview(buf) as view:
                sent = self._seal_from(view)
            chan._send_buf_len -= sent
            if sent < len(buf):
                del buf[:sent]
                break
            del chan._send_buf[0]
        self.fallback()  # the rest, then pause/resume, and a pending EOF or close

    def _seal_from(self, view: memoryview) -> int:
        """Send the start of ``view`` as sealed packets while the window and the
        connection's state allow; the bytes sent. The state is checked once per call
        and the byte count for a rekey before each packet; the GCM invocation counter
        is carried as an int and stored back in asyncssh's cipher at the end."""
        chan, conn = self.chan, self.conn
        cipher = self.steady() if chan._send_window else None
        if cipher is None:
            return 0
        aes = self._key.of(cipher)
        fixed, counter = cipher._iv[:4], int.from_bytes(cipher._iv[4:], "big")
        head = bytes((MSG_CHANNEL_DATA,)) + chan._send_chan.to_bytes(4, "big")
        enchdrlen, blocksize = conn._send_enchdrlen, conn._send_blocksize
        out: list[bytes | bytearray] = []
        sent, seq, sealed = 0, conn._send_seq, 0
        total = len(view)
        while sent < total and chan._send_window and conn._rekey_bytes_sent < conn._rekey_bytes:
            size = min(total - sent, chan._send_window, chan._send_pktsize)
            payload = 9 + size  # type, recipient channel, string length, data
            padlen = -(enchdrlen + payload) % blocksize
            if padlen < 4:
                padlen += blocksize
            pktlen = 1 + payload + padlen
            header = pktlen.to_bytes(4, "big")
            # One allocation, no zero fill; sealed in place (the tag goes in the last bytes).
            packet = bytearray().join(
                (
                    bytes((padlen,)),
                    head,
                    size.to_bytes(4, "big"),
                    view[sent : sent + size],
                    self._padding(padlen),
                    _TAG_ROOM,
                )
            )
            with memoryview(packet) as plain:
                aes.encrypt_into(fixed + counter.to_bytes(8, "big"), plain[:pktlen], header, packet)
            counter = (counter + 1) & 0xFFFFFFFFFFFFFFFF
            out += (header, packet)
            seq = (seq + 1) & 0xFFFFFFFF
            conn._rekey_bytes_sent += pktlen
            chan._send_window -= size
            sent += size
            sealed += 1
        if sealed:
            cipher._iv = fixed + counter.to_bytes(8, "big")
            conn._send_seq = seq
            conn._transport.writelines(out)
            self.packets += sealed
        return sent

    def _padding(self, size: int) -> bytes:
        """Random padding, cut from a pool refilled from the OS (one call per ~4000
        packets rather than one each); it is encrypted with the packet."""
        if self._pool_at + size > len(self._pool):
            self._pool, self._pool_at = os.urandom(_POOL), 0
        start = self._pool_at
        self._pool_at += size
        return self._pool[start : start + size]

    @property
    def keys(self) -> int:
        """Send keys sealed with so far (one more after each rekey)."""
        return self._key.keys


def install(
    conn: asyncssh.SSHServerConnection, chan: asyncssh.SSHTCPChannel[bytes]
) -> DataPackets | None:
    """Send ``chan``'s data through a :class:`DataPackets` (returned); None, and nothing
    changed, when asyncssh lacks the internals it relies on or logs every packet."""
    if packet_log_on():
        return None  # let asyncssh see every packet
    lacking = missing(conn, _NEEDS["conn"]) + missing(chan, _NEEDS["chan"])
    if lacking:
        log.debug("asyncssh without %s: data packets left to asyncssh", ", ".join(lacking))
        return None
    packets = DataPackets(conn, chan)
    chan._flush_send_buf = packets.flush  # type: ignore[method-assign]
    return packets
