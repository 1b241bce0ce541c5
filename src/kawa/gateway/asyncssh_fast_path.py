"""The SSH gateway's fast path through asyncssh's private internals: the only module of
Kawa that touches them, and only on the asyncssh versions it was written for.

In a bulk transfer through the gateway asyncssh's own per-packet work was most of the
gateway's time (docs/benchmarks.md): it writes each packet with its own system call,
sends an empty ``SSH_MSG_IGNORE`` before each data packet, builds a packet by about ten
copies of its payload, makes a fresh AES key schedule per packet, and passes every
received packet through its general parser. On a connection :func:`install` takes, the
gateway instead

- writes through a :class:`~kawa.gateway.transport.CoalescingTransport` (it replaces
  asyncssh's ``_transport``) and drops the empty IGNORE packets (padding against
  CBC-mode attacks; the gateway offers AES-GCM only);
- seals the channel data packets it sends itself (:class:`DataPackets`: one copy into
  the packet, sealed in place with a cached AES-GCM key);
- opens the channel data, window adjust and empty ignore packets it receives itself
  (:class:`ReceivedPackets`), and hands every other packet to asyncssh;
- skips asyncssh's per-packet debug log lines while that log is off.

When to use it: only where ``asyncssh.__version__`` is in :data:`SUPPORTED_VERSIONS`
(the version pinned in pyproject.toml) and every internal it uses is there; otherwise,
or where the host's ``ssh_fast_path`` setting is off, :func:`install` changes nothing
and the gateway runs on asyncssh's own public path (same behaviour, slower). The packet
parts also stand aside while asyncssh logs every packet (debug level 3).

Invariants the fast path keeps (a review against asyncssh's code is needed for any new
version before it is added to :data:`SUPPORTED_VERSIONS`):

- **Nonces.** AES-GCM's 12-byte nonce is asyncssh's cipher ``_iv``: 4 fixed bytes and
  an 8-byte invocation counter, one step per packet sealed or opened. The counter of a
  send is carried as an int and stored back in asyncssh's cipher before control
  returns to asyncssh; a received packet steps it (``_update_iv``) as it is opened. So
  every packet, whoever seals or opens it, uses the next nonce: none is reused or
  skipped.
- **Sequence numbers.** ``_send_seq`` and ``_recv_seq`` advance by one (mod 2**32) per
  packet sealed or opened here, exactly as asyncssh's own send and receive do; a key
  exchange's packets (including NEWKEYS, which may reset them) all go through asyncssh.
- **Rekeying.** Packets are sealed here only while the keys are exchanged, the
  connection authenticated and uncompressed, and no rekey is due (``_rekey_bytes_sent``
  below ``_rekey_bytes``, checked before each packet and counted by each, and the rekey
  time not passed); otherwise the data goes to asyncssh, which then starts the key
  exchange. Received packets are opened here only while asyncssh is between packets;
  anything not a data, window or ignore packet of a registered, open channel goes to
  asyncssh whole and still sealed, so key exchange messages reach it and it switches
  keys as usual. Each new cipher object after a key exchange gets a new cached key.
- **Ordering.** Sealed packets go to the same coalescing transport as asyncssh's
  packets, in the order they are made; data is sealed here only while nothing waits in
  asyncssh's send buffer for that channel (otherwise it queues behind it). Received
  bytes reach asyncssh in order, one whole packet at a time around the ones opened
  here; a packet cut across reads waits for its rest.

tests/unit/test_gateway_fast_path.py fails if the pinned asyncssh no longer takes the
fast path, and checks the bytes against a real client across key re-exchanges.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import asyncssh
from asyncssh.encryption import GCMEncryption
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kawa.gateway.transport import CoalescingTransport

log = logging.getLogger(__name__)

SUPPORTED_VERSIONS = frozenset({"2.24.1"})
"""asyncssh versions whose internals the fast path was written and reviewed for."""

MSG_IGNORE = 2
MSG_CHANNEL_WINDOW_ADJUST = 93
MSG_CHANNEL_DATA = 94
_EMPTY_STRING = asyncssh.packet.String(b"")
_TAG = 16
_TAG_ROOM = bytes(_TAG)  # where AES-GCM's tag is written
_POOL = 64 * 1024
_OPEN_STATES = {"open", "eof_pending", "eof"}

_TRANSPORT_NEEDS = ("write", "writelines", "set_protocol", "is_closing", "close", "abort")
_CONN_NEEDS = (
    "_transport",
    "send_packet",
    # sending
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
    # receiving
    "_inpbuf",
    "_recv_handler",
    "_recv_pkthdr",
    "_recv_encryption",
    "_decompressor",
    "_recv_seq",
    "_max_recv_pktlen",
    "_channels",
    "_reset_keepalive_timer",
    "_send_disconnect",
    "_force_close",
    "internal_error",
)
_CHAN_NEEDS = (
    "_flush_send_buf",
    "_send_buf",
    "_send_buf_len",
    "_send_window",
    "_send_pktsize",
    "_send_chan",
    "_send_state",
    "_recv_chan",
    "_recv_state",
    "_recv_window",
    "_accept_data",
    "log_sent_packet",
    "log_received_packet",
)
_warned: set[str] = set()


def unsupported() -> str | None:
    """Why the installed asyncssh gets no fast path (None: it does)."""
    version = str(getattr(asyncssh, "__version__", "unknown"))
    if version not in SUPPORTED_VERSIONS:
        known = ", ".join(sorted(SUPPORTED_VERSIONS))
        return f"asyncssh {version} is not a version it was written for ({known})"
    return None


def packet_log_on() -> bool:
    """Whether asyncssh logs every packet (debug level 3): then it must see them all."""
    return bool(getattr(asyncssh.logging.SSHLogger, "_debug_level", 3) >= 3)


def _missing(obj: object, names: Iterable[str]) -> list[str]:
    return [n for n in names if not hasattr(obj, n)]


def _fall_back(reason: str) -> None:
    if reason not in _warned:  # once per process and reason
        _warned.add(reason)
        log.warning("SSH gateway fast path off: %s; using asyncssh's own (slower) path", reason)


def available() -> bool:
    """Whether the installed asyncssh gets the fast path (if not, the reason is logged)."""
    reason = unsupported()
    if reason is not None:
        _fall_back(reason)
    return reason is None


def install(conn: asyncssh.SSHServerConnection) -> FastPath | None:
    """Put ``conn`` (just made, before any packet) on the fast path; None, and nothing
    changed, where the installed asyncssh is not a supported version or lacks an
    internal it relies on."""
    reason = unsupported()
    transport = getattr(conn, "_transport", None)
    if reason is None:
        lacking = _missing(conn, _CONN_NEEDS) + _missing(transport, _TRANSPORT_NEEDS)
        if lacking:
            reason = f"asyncssh lacks {', '.join(lacking)}"
    if reason is not None:
        _fall_back(reason)
        return None
    return FastPath(conn, transport)


def _no_packet_log(*args: Any, **kwargs: Any) -> None:
    pass


class FastPath:
    """One connection on the fast path: its coalescing transport and, unless asyncssh
    logs every packet, its received-packet opener."""

    def __init__(self, conn: Any, socket_transport: Any) -> None:
        self.conn = conn
        self.transport = CoalescingTransport(conn, socket_transport)
        conn._transport = self.transport
        socket_transport.set_protocol(self.transport)
        send_packet = conn.send_packet

        def no_empty_ignore(pkttype: int, *args: bytes, handler: Any = None) -> None:
            if pkttype == MSG_IGNORE and args == (_EMPTY_STRING,):
                return
            send_packet(pkttype, *args, handler=handler)

        conn.send_packet = no_empty_ignore
        self.received: ReceivedPackets | None = None
        """Opens channel data and window packets past asyncssh (None: all go to it)."""
        if not packet_log_on():
            self.received = ReceivedPackets(conn, self.transport.to_asyncssh)
            self.transport.route = self.received.feed

    def channel(self, chan: asyncssh.SSHTCPChannel[bytes]) -> DataPackets | None:
        """Take ``chan``, a data channel just created on this connection, onto the fast
        path: its received data and window packets are opened here, its per-packet log
        lines skipped; the returned :class:`DataPackets` seals what is written through
        it (None: the channel lacks an internal, or asyncssh logs every packet)."""
        lacking = _missing(chan, _CHAN_NEEDS)
        if lacking:
            _fall_back(f"asyncssh channels lack {', '.join(lacking)}")
            return None
        if self.received is None:
            return None
        any_chan: Any = chan
        any_chan.log_sent_packet = _no_packet_log  # formatted before the level is checked
        any_chan.log_received_packet = _no_packet_log
        self.received.register(chan)
        packets = DataPackets(self.conn, chan)
        any_chan._flush_send_buf = packets.flush
        return packets


class GcmKey:
    """An AES-GCM key schedule for asyncssh's current GCM cipher object: made once per
    key (again after each rekey, which brings a new cipher object), not per packet."""

    def __init__(self) -> None:
        self._cipher: object = None
        self._aes: AESGCM | None = None
        self.keys = 0
        """Keys used so far."""

    def of(self, cipher: Any) -> AESGCM:
        if self._aes is None or self._cipher is not cipher:
            self._cipher, self._aes = cipher, AESGCM(cipher._key)
            self.keys += 1
        return self._aes


class DataPackets:
    """Sends one channel's data as sealed packets while the connection is steady (keys
    exchanged, AES-GCM, no compression, no rekey due): the payload is copied once, from
    the caller's bytes into the packet buffer, sealed in place with ``encrypt_into``. It
    also serves asyncssh's send-buffer flush (called when the client opens its window).
    In any other state the data goes through asyncssh."""

    def __init__(self, conn: Any, chan: Any) -> None:
        self.conn, self.chan = conn, chan
        self.fallback: Callable[[], None] = chan._flush_send_buf
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


class ReceivedPackets:
    """Opens one connection's channel data, window adjust and empty ignore packets for
    the channels registered with it, while asyncssh is between packets and the
    connection is steady (AES-GCM keys exchanged, authenticated, no compression), and
    does what asyncssh's handlers would (data: window check, then the channel's
    ``_accept_data``; window: add it, then flush; ignore: nothing). Any other packet, or
    one it cannot vouch for (a bad tag, a malformed length, a channel not open), goes to
    asyncssh whole and still sealed."""

    def __init__(self, conn: Any, deliver: Callable[[bytes], None]) -> None:
        self.conn = conn
        self.deliver = deliver
        """Where bytes it does not take go: asyncssh's ``data_received``."""
        self.channels: dict[int, Any] = {}
        self.pending = b""
        self._key = GcmKey()
        self.packets = 0
        """Packets opened here (the rest went to asyncssh)."""

    def register(self, chan: Any) -> None:
        """Take ``chan``'s data and window packets from now on. Channels asyncssh has
        let go of are dropped here then, so only live ones are held."""
        live = self.conn._channels
        self.channels = {n: c for n, c in self.channels.items() if live.get(n) is c}
        self.channels[chan._recv_chan] = chan

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
