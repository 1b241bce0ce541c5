"""Channel data and window packets received by the SSH gateway, opened without asyncssh's
general packet path.

In a transfer through the gateway most received packets are ``SSH_MSG_CHANNEL_DATA``
(an upload's payload, or the inner ssh's small window adjusts in a download),
``SSH_MSG_CHANNEL_WINDOW_ADJUST`` (the client granting more window) and, from some
clients, an empty ``SSH_MSG_IGNORE`` before each data packet. asyncssh passes each
through its general path (slicing its input buffer, a packet parser, a handler lookup,
a fresh AES key schedule per packet); measured, that was the largest part of the
gateway's own time in an upload (docs/benchmarks.md, issue 5). While asyncssh is
between packets and the connection is steady (AES-GCM keys exchanged, authenticated, no
compression), a :class:`ReceivedPackets` opens those kinds itself, for the channels
registered with it, and does what asyncssh's handlers would (data: window check, then
the channel's ``_accept_data``; window: add it, then flush; ignore: nothing). Any other
packet, or one it cannot vouch for (a bad tag, a malformed length, a channel not open),
goes to asyncssh whole and still sealed, and asyncssh opens it with its own state,
which is kept in step here (sequence number, GCM invocation counter). asyncssh is
pinned; tests/unit/test_ssh_gateway_framing.py checks the result against a real client,
across key re-exchanges.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import asyncssh
from asyncssh.encryption import GCMEncryption
from cryptography.exceptions import InvalidTag

from kawa.gateway.asyncssh_fast_path import GcmKey, missing, packet_log_on

log = logging.getLogger(__name__)

MSG_IGNORE = 2
MSG_CHANNEL_WINDOW_ADJUST = 93
MSG_CHANNEL_DATA = 94
_TAG = 16
_OPEN_STATES = {"open", "eof_pending", "eof"}
_NEEDS = (
    "_inpbuf",
    "_recv_handler",
    "_recv_pkthdr",
    "_recv_encryption",
    "_decompressor",
    "_auth_complete",
    "_recv_seq",
    "_transport",
    "_max_recv_pktlen",
    "_channels",
    "_reset_keepalive_timer",
    "_send_disconnect",
    "_force_close",
    "internal_error",
)
_CHAN_NEEDS = (
    "_recv_chan",
    "_recv_state",
    "_recv_window",
    "_send_state",
    "_accept_data",
    "_send_window",
    "_flush_send_buf",
)


class ReceivedPackets:
    """Opens one connection's channel data and window packets while it may."""

    def __init__(self, conn: Any, deliver: Callable[[bytes], None]) -> None:
        self.conn = conn
        self.deliver = deliver
        """Where bytes it does not take go: asyncssh's ``data_received``."""
        self.channels: dict[int, Any] = {}
        self.pending = b""
        self._key = GcmKey()
        self.packets = 0
        """Packets opened here (the rest went to asyncssh)."""

    def register(self, chan: Any) -> bool:
        """Take ``chan``'s data and window packets from now on; False (left to
        asyncssh) when the channel lacks the internals this relies on. Channels asyncssh
        has let go of are dropped here then, so only live ones are held."""
        lacking = missing(chan, _CHAN_NEEDS)
        if lacking:
            log.debug("asyncssh channel without %s: its packets left to asyncssh", lacking)
            return False
        live = self.conn._channels
        self.channels = {n: c for n, c in self.channels.items() if live.get(n) is c}
        self.channels[chan._recv_chan] = chan
        return True

    def steady(self) -> Any:
        """asyncssh's GCM cipher object when the next packet may be opened here, else None."""
        conn = self.conn
        enc = conn._recv_encryption
        if (
            not isinstance(enc, GCMEncryption)
            or conn._transport is None
            or conn._decompressor is not None
            or not conn._auth_complete
            or conn._inpbuf
            or conn._recv_handler != conn._recv_pkthdr
        ):
            return None
        return enc._cipher

    def feed(self, data: bytes) -> None:
        """Take the received ``data``: open what can be opened here, pass on the rest.
        An error in a channel's handling ends the connection as asyncssh's own
        receive loop would (a disconnect message, or an internal error)."""
        if self.pending:
            data = self.pending + data
            self.pending = b""
        elif self.steady() is None:
            self.deliver(data)
            return
        conn = self.conn
        conn._reset_keepalive_timer()
        try:
            self._feed(memoryview(data), data)
        except asyncssh.DisconnectError as exc:
            conn._send_disconnect(exc.code, exc.reason, exc.lang)
            conn._force_close(exc)
        except Exception:
            conn.internal_error()

    def _feed(self, view: memoryview, data: bytes) -> None:
        conn = self.conn
        pos, size = 0, len(view)
        while size - pos >= 4:
            cipher = self.steady()
            pktlen = int.from_bytes(view[pos : pos + 4], "big")
            if cipher is None or not 16 <= pktlen <= conn._max_recv_pktlen:
                break  # asyncssh takes it from here (and refuses a bad length)
            end = pos + 4 + pktlen + _TAG
            if end > size:
                self.pending = bytes(view[pos:])
                return
            if not self._open(cipher, view[pos:end], pktlen):
                self.deliver(bytes(view[pos:end]))  # one whole packet: asyncssh opens it
            pos = end
        if pos == size:
            return
        if size - pos < 4 and self.steady() is not None:
            self.pending = bytes(view[pos:])  # a length cut short: wait for the rest
        else:
            self.deliver(bytes(view[pos:]) if pos else data)

    def _open(self, cipher: Any, packet: memoryview, pktlen: int) -> bool:
        """Open and hand on one sealed packet; False (nothing changed) if it is not one
        of ours."""
        try:
            plain = self._key.of(cipher).decrypt(cipher._iv, packet[4:], packet[:4])
        except InvalidTag:
            return False  # asyncssh reports it
        padlen = plain[0]
        end = pktlen - padlen
        if padlen < 4 or end < 2:
            return False
        kind = plain[1]
        if kind == MSG_IGNORE:  # a string, which asyncssh checks and drops
            if end < 6 or 6 + int.from_bytes(plain[2:6], "big") != end:
                return False
            self._step(cipher)
            return True
        if end < 10:
            return False
        number = int.from_bytes(plain[2:6], "big")
        chan = self.channels.get(number)
        if chan is None:
            return False
        if self.conn._channels.get(number) is not chan:
            del self.channels[number]  # closed (its number may be given to another)
            return False
        if kind == MSG_CHANNEL_DATA:
            datalen = int.from_bytes(plain[6:10], "big")
            if 10 + datalen != end or chan._recv_state != "open" or datalen > chan._recv_window:
                return False
            self._step(cipher)
            self.conn._auth_final = True
            chan._accept_data(plain[10:end])
            return True
        if kind == MSG_CHANNEL_WINDOW_ADJUST and end == 10 and chan._recv_state in _OPEN_STATES:
            self._step(cipher)
            self.conn._auth_final = True
            chan._send_window += int.from_bytes(plain[6:10], "big")
            chan._flush_send_buf()
            return True
        return False

    def _step(self, cipher: Any) -> None:
        conn = self.conn
        cipher._update_iv()
        conn._recv_seq = (conn._recv_seq + 1) & 0xFFFFFFFF
        self.packets += 1

    @property
    def keys(self) -> int:
        """Receive keys opened with so far (one more after each rekey)."""
        return self._key.keys


def install(
    conn: asyncssh.SSHServerConnection, deliver: Callable[[bytes], None]
) -> ReceivedPackets | None:
    """A :class:`ReceivedPackets` for ``conn`` that passes what it does not take to
    ``deliver``; None when asyncssh lacks the internals it relies on or logs every
    packet."""
    if packet_log_on():
        return None
    lacking = missing(conn, _NEEDS)
    if lacking:
        log.debug("asyncssh without %s: received packets left to asyncssh", ", ".join(lacking))
        return None
    return ReceivedPackets(conn, deliver)
