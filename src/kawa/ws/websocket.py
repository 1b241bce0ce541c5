"""A WebSocket on a socket Kawa holds itself (RFC 6455: binary messages, no extensions),
as a :class:`~kawa.ws.channel.Channel` for stream sessions.

Clients get the socket from :func:`kawa.ws.dial.dial`, the runner from uvicorn
(:mod:`kawa.ws.uvicorn_detach`). Compared with a general WebSocket library this one does
less and copies less: a frame's payload is read from the kernel straight into the
buffer it is handed on in (asyncio's ``BufferedProtocol``), and a frame is written as
its header plus the payload parts, never joined. Pings are answered; text messages
are refused when read; fragmented binary messages are put back together. It sends no
pings of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import struct
from collections import deque
from collections.abc import Sequence
from typing import cast

from kawa.protocol.streams import FrameError, close_reason
from kawa.relay.kernel_pipe import drain_pipe
from kawa.ws.channel import Channel, ChannelClosed, sendable
from kawa.ws.dial import DialRefused, dial
from kawa.ws.direct import DIRECT_MIN, DIRECT_PREFIX, DirectPayloads

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - the C extension ships in websockets' wheels
    from websockets.utils import apply_mask

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_KNOWN = {OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG}
_SCRATCH = 16 * 1024
_QUEUE_LIMIT = 64  # messages read ahead of the consumer before reading pauses
CLOSE_TIMEOUT = 2.0
_U16, _U64 = struct.Struct("!H"), struct.Struct("!Q")
Buffer = bytes | bytearray | memoryview


def _write_some(fd: int, data: bytes) -> int:
    """Write what a non-blocking socket takes now: the count (0 if it is full)."""
    try:
        return os.write(fd, data)
    except BlockingIOError:
        return 0


def _masked(payload: Buffer, mask: bytes) -> Buffer:
    return apply_mask(payload, mask) if mask else payload


class _Text:
    """Stands in the message queue for a text message (refused when read)."""


_TEXT = _Text()


def frame_header(opcode: int, length: int, mask: bytes = b"") -> bytes:
    """A final frame's header for a payload of ``length`` bytes (masked if ``mask``)."""
    first = 0x80 | opcode
    bit = 0x80 if mask else 0
    if length < 126:
        head = bytes((first, bit | length))
    elif length < 1 << 16:
        head = bytes((first, bit | 126)) + _U16.pack(length)
    else:
        head = bytes((first, bit | 127)) + _U64.pack(length)
    return head + mask


class WebSocketChannel(DirectPayloads, asyncio.BufferedProtocol):
    """One WebSocket connection after its handshake. ``client`` says which side this is
    (clients mask what they send and expect nothing masked back; servers the reverse)."""

    def __init__(self, *, client: bool, max_message: int) -> None:
        self.client, self.max_message = client, max_message
        self.transport: asyncio.Transport | None = None
        self._scratch = bytearray(_SCRATCH)
        self._filled = 0
        self._payload: bytearray | None = None  # a large payload being read straight in
        self._got = 0
        self._pending: tuple[bool, int, bytes] = (True, OP_BINARY, b"")  # its fin, op, mask
        self._parts: list[bytes | bytearray] = []  # a fragmented message so far
        self._parts_op = 0
        self._parts_size = 0
        self._messages: deque[bytes | bytearray | _Text] = deque()
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._lost = asyncio.Event()
        self._paused = False
        self.closed: ChannelClosed | None = None
        """Why the connection ended (the peer's close frame, or a lost connection)."""
        self._close_sent = False
        self._init_direct()

    # -- asyncio callbacks -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._payload is not None:
            return memoryview(self._payload)[self._got :]
        peek = self._peek_size()
        if peek is not None and self._filled < peek:
            return memoryview(self._scratch)[self._filled : peek]
        return memoryview(self._scratch)[self._filled :]

    def buffer_updated(self, nbytes: int) -> None:
        if self._payload is not None:
            self._got += nbytes
            if self._got == len(self._payload):
                payload, self._payload = self._payload, None
                self._frame(*self._pending, payload)
            return
        self._filled += nbytes
        try:
            used = self._parse()
        except FrameError as exc:
            self._fail(exc.code, exc.reason)
            return
        rest = self._filled - used
        if used and rest:
            self._scratch[:rest] = self._scratch[used : self._filled]
        self._filled = rest

    def eof_received(self) -> bool:
        return False  # the peer will send nothing more: let the transport close

    def _pending_messages(self) -> bool:
        return bool(self._messages)

    def _reparse(self) -> None:
        if self._payload is None and self._direct is None:
            self.buffer_updated(0)

    def _read_paused(self) -> bool:
        return self._paused

    def connection_lost(self, exc: Exception | None) -> None:
        self._close_direct()
        if self.closed is None:
            self.closed = ChannelClosed(1006, str(exc or ""))
        for event in (self._readable, self._writable, self._lost):
            event.set()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # -- parsing -----------------------------------------------------------------------
    def _parse(self) -> int:
        """Handle every whole frame in the scratch buffer; the bytes used. A frame whose
        payload is only partly there continues in its own buffer."""
        buf, end, pos = self._scratch, self._filled, 0
        while end - pos >= 2:
            first, second = buf[pos], buf[pos + 1]
            fin, opcode = bool(first & 0x80), first & 0x0F
            masked, length = second & 0x80, second & 0x7F
            head = 2
            if length == 126:
                if end - pos < 4:
                    break
                length, head = _U16.unpack_from(buf, pos + 2)[0], 4
            elif length == 127:
                if end - pos < 10:
                    break
                length, head = _U64.unpack_from(buf, pos + 2)[0], 10
            if masked:
                head += 4
            if end - pos < head:
                break
            self._check(first, opcode, fin, bool(masked), length)
            mask = bytes(buf[pos + head - 4 : pos + head]) if masked else b""
            start = pos + head
            if end - start >= length:
                self._peek = False
                self._frame(fin, opcode, mask, bytearray(memoryview(buf)[start : start + length]))
                pos = start + length
                continue
            if (
                self.direct is not None
                and not masked
                and fin
                and opcode == OP_BINARY
                and not self._parts
                and end - start >= DIRECT_PREFIX
                and length - (end - start) >= DIRECT_MIN
            ):
                sink = self._direct_or_hold(bytes(buf[start : start + DIRECT_PREFIX]), length)
                if sink is True:
                    return pos  # this frame is parsed again after the hold
                if sink is not False:
                    ahead = memoryview(buf)[start + DIRECT_PREFIX : end]
                    self._begin_direct(sink, ahead, length - (end - start))
                    return end
            payload = bytearray(length)
            payload[: end - start] = buf[start:end]
            self._payload, self._got, self._pending = payload, end - start, (fin, opcode, mask)
            return end
        return pos

    def _check(self, first: int, opcode: int, fin: bool, masked: bool, length: int) -> None:
        if first & 0x70:
            raise FrameError("reserved bits set: no extension was negotiated")
        if opcode not in _KNOWN:
            raise FrameError(f"unknown WebSocket opcode {opcode:#x}")
        if masked == self.client:
            raise FrameError("a client must mask its frames and a server must not")
        if opcode >= OP_CLOSE and (not fin or length > 125):
            raise FrameError("a control frame must be whole and at most 125 bytes")
        if length > self.max_message or self._parts_size + length > self.max_message:
            raise FrameError(f"message over the {self.max_message}-byte limit", 1009)

    def _frame(self, fin: bool, opcode: int, mask: bytes, payload: bytes | bytearray) -> None:
        if self.closed is not None and opcode != OP_CLOSE:
            return  # after the peer's close frame nothing counts
        if mask:
            payload = apply_mask(payload, mask)
        if opcode == OP_PING:
            if not self._close_sent:
                pong = self._mask()
                self._write([frame_header(OP_PONG, len(payload), pong), _masked(payload, pong)])
        elif opcode == OP_CLOSE:
            self._on_close(payload)
        elif opcode == OP_PONG:
            pass
        elif opcode == OP_CONT or not fin or self._parts:
            self._fragment(fin, opcode, payload)
        else:
            self._deliver(_TEXT if opcode == OP_TEXT else payload)

    def _fragment(self, fin: bool, opcode: int, payload: bytes | bytearray) -> None:
        if (opcode == OP_CONT) != bool(self._parts_op):
            self._fail(1002, "a continuation frame must follow an unfinished message")
            return
        if opcode != OP_CONT:
            self._parts_op = opcode
        self._parts.append(payload)
        self._parts_size += len(payload)
        if fin:
            whole = b"".join(self._parts)
            op, self._parts, self._parts_op, self._parts_size = self._parts_op, [], 0, 0
            self._deliver(_TEXT if op == OP_TEXT else whole)

    def _deliver(self, message: bytes | bytearray | _Text) -> None:
        self._messages.append(message)
        self._readable.set()
        if len(self._messages) >= _QUEUE_LIMIT and not self._paused:
            self._paused = True
            self._set_reading()

    def _on_close(self, payload: bytes | bytearray) -> None:
        if len(payload) == 1:
            self._fail(1002, "a close frame's payload is one byte")
            return
        code, reason = 1005, ""
        if payload:
            code = _U16.unpack_from(payload)[0]
            try:
                reason = bytes(payload[2:]).decode()
            except UnicodeDecodeError:
                self._fail(1007, "the close reason is not UTF-8")
                return
        if self.closed is None:
            self.closed = ChannelClosed(code, reason)
        if not self._close_sent:  # echo it, as the protocol asks
            echo = (1000, "") if code == 1005 else sendable(code, reason)
            self._send_close(*echo)
        if not self.client and self.transport is not None:
            self.transport.close()  # both close frames are out: the server ends TCP
        self._readable.set()

    def _fail(self, code: int, reason: str) -> None:
        """The peer broke the protocol: close with ``code`` and stop reading."""
        if self.closed is None:
            self.closed = ChannelClosed(code, reason)
        if not self._close_sent:
            self._send_close(code, reason)
        if self.transport is not None:
            self.transport.close()
        self._readable.set()

    # -- writing -----------------------------------------------------------------------
    def _mask(self) -> bytes:
        return os.urandom(4) if self.client else b""

    def _write(self, parts: Sequence[Buffer]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.writelines(parts)

    def _send_close(self, code: int, reason: str) -> None:
        self._close_sent = True
        body = _U16.pack(code) + close_reason(reason).encode()
        mask = self._mask()
        self._write([frame_header(OP_CLOSE, len(body), mask), _masked(body, mask)])

    # -- the Channel interface ---------------------------------------------------------
    async def recv(self) -> bytes:
        while not self._messages:
            if self.closed is not None:
                raise self.closed
            self._readable.clear()
            await self._readable.wait()
        message = self._messages.popleft()
        if self._paused and len(self._messages) <= _QUEUE_LIMIT // 2:
            self._paused = False
            self._set_reading()
        if isinstance(message, _Text):
            raise FrameError("text messages are not frames: send binary", 1003)
        return cast(bytes, message)  # a bytearray where read straight in: bytes-like

    async def send(self, message: Buffer) -> None:
        await self.send_parts((message,))

    async def send_parts(self, parts: Sequence[Buffer]) -> None:
        """Send one binary message made of ``parts`` (not joined unless masking)."""
        if self._close_sent or self.closed is not None:
            raise self.closed or ChannelClosed(1000, "closed")
        size = sum(len(p) for p in parts)
        mask = self._mask()
        if mask:
            masked: list[Buffer] = [frame_header(OP_BINARY, size, mask)]
            for part in parts:  # each part masked where it falls in the message
                masked.append(apply_mask(part, mask))
                turn = len(part) % 4
                mask = mask[turn:] + mask[:turn]
            self._write(masked)
        else:
            self._write([frame_header(OP_BINARY, size), *parts])
        if not self._writable.is_set():
            await self._writable.wait()
        if self.closed is not None and self.closed.code == 1006:
            raise self.closed

    async def send_spliced(self, parts: Sequence[Buffer], pipe_r: int, size: int) -> None:
        """Send one binary message: ``parts``, then ``size`` bytes waiting in a kernel
        pipe. A server whose write buffer is empty splices them into the socket; what
        the socket does not take at once goes through the transport as usual."""
        if self._close_sent or self.closed is not None:
            raise self.closed or ChannelClosed(1000, "closed")
        transport = self.transport
        raw = transport.get_extra_info("socket") if transport is not None else None
        if self.client or raw is None or transport is None or transport.get_write_buffer_size():
            await self.send_parts((*parts, drain_pipe(pipe_r, size)))
            return
        prefix = sum(len(p) for p in parts)
        head = b"".join((frame_header(OP_BINARY, prefix + size), *parts))
        fd = raw.fileno()
        try:
            written = _write_some(fd, head)
            moved = 0
            while written == len(head) and moved < size:
                try:
                    moved += os.splice(
                        pipe_r, fd, size - moved, flags=os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
                    )
                except BlockingIOError:
                    break
        except OSError as exc:  # the connection broke under us
            transport.abort()
            raise ChannelClosed(1006, str(exc)) from None
        rest = [head[written:]] if written < len(head) else []
        if moved < size:
            rest.append(drain_pipe(pipe_r, size - moved))
        if rest:
            self._write(rest)
        if not self._writable.is_set():
            await self._writable.wait()
        if self.closed is not None and self.closed.code == 1006:
            raise self.closed

    async def close(self, code: int, reason: str) -> None:
        """Send a close frame and wait (briefly) for the peer's, which ends the
        connection: the server closes TCP once it has the client's close frame."""
        transport = self.transport
        if transport is None:
            return
        if not self._close_sent and not transport.is_closing():
            self._send_close(*sendable(code, reason))
        if self.closed is None:
            self.closed = ChannelClosed(code, reason)
        self._messages.clear()
        self._readable.set()
        if self._paused:  # the peer's close frame must still be read
            self._paused = False
            self._set_reading()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._lost.wait(), CLOSE_TIMEOUT)
        transport.abort()


async def adopt(sock: socket.socket, *, client: bool, max_message: int) -> WebSocketChannel:
    """A channel on ``sock``, a connection whose handshake is already done."""
    loop = asyncio.get_running_loop()

    def make() -> WebSocketChannel:
        return WebSocketChannel(client=client, max_message=max_message)

    if client:
        _, channel = await loop.create_connection(make, sock=sock)
    else:
        _, channel = await loop.connect_accepted_socket(make, sock=sock)
    return channel


async def connect(
    url: str,
    headers: dict[str, str],
    subprotocol: str,
    *,
    max_message: int,
    timeout: float,
    tls: ssl.SSLContext | None = None,
) -> Channel:
    """The client side of a WebSocket to ``url``: this module's channel for ws://, the
    ``websockets`` library's for wss:// (TLS, verified with ``tls``, by default with
    the system's CA certificates).

    Raises DialRefused (an HTTP status other than 101), InvalidHandshake, OSError or
    TimeoutError.
    """
    if not url.startswith("ws://"):
        from websockets.asyncio.client import connect as websockets_connect
        from websockets.exceptions import InvalidStatus
        from websockets.typing import Subprotocol

        from kawa.ws.websockets_channel import WebsocketsChannel

        try:
            conn = await websockets_connect(
                url,
                additional_headers=headers,
                subprotocols=[Subprotocol(subprotocol)],
                compression=None,
                max_size=max_message,
                open_timeout=timeout,
                ssl=True if tls is None else tls,
            )
        except InvalidStatus as exc:
            raise DialRefused(exc.response.status_code) from None
        return WebsocketsChannel(conn)
    sock = await asyncio.to_thread(dial, url, headers, subprotocol, timeout)
    try:
        return await adopt(sock, client=True, max_message=max_message)
    except BaseException:
        sock.close()
        raise
