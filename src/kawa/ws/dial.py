"""Open a WebSocket and keep its socket: the handshake with ``websockets``' sans-I/O
client, reading not one byte past the server's response.

The host dials the runner this way for stream sessions, so that everything the runner
sends after its handshake (its READY frame, then the streams) is still in the socket,
ready to be spliced to the user's connection unparsed (:mod:`kawa.relay.splice`).
A tunnel's client (:mod:`kawa.client.tunnel`) reads exactly one frame after it
(:func:`read_frame`) and hands the socket over as a plain byte stream.
"""

from __future__ import annotations

import socket
import time

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidHandshake
from websockets.http11 import Response
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from kawa.protocol import streams as proto

MAX_HEAD = 64 * 1024


class DialRefused(Exception):
    """The server answered, but not with ``101 Switching Protocols``."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def _read_head(sock: socket.socket, deadline: float) -> bytes:
    """The HTTP response head, up to and including the blank line; nothing after it."""
    while True:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        peeked = sock.recv(MAX_HEAD, socket.MSG_PEEK)
        if not peeked:
            raise ConnectionError("the server closed the connection during the handshake")
        end = peeked.find(b"\r\n\r\n")
        if end >= 0:
            return _recv_exactly(sock, end + 4)
        if len(peeked) >= MAX_HEAD:
            raise ConnectionError("the server's handshake response is too long")
        time.sleep(0.001)  # part of the head is in; wait for the rest


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the server closed the connection during the handshake")
        data += chunk
    return bytes(data)


def dial(
    url: str, headers: dict[str, str], subprotocol: str, timeout: float = 10.0
) -> socket.socket:
    """A connected socket whose WebSocket handshake to ``url`` (ws:// only) succeeded
    with ``subprotocol`` and no extensions. Blocking: run it in a thread.

    Raises DialRefused (another HTTP status), InvalidHandshake, OSError or TimeoutError.
    """
    uri = parse_uri(url)
    if uri.secure:
        raise ValueError("dial() speaks ws:// only")
    deadline = time.monotonic() + timeout
    sock = socket.create_connection((uri.host, uri.port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        protocol = ClientProtocol(uri, subprotocols=[Subprotocol(subprotocol)])
        request = protocol.connect()
        for name, value in headers.items():
            request.headers[name] = value
        protocol.send_request(request)
        sock.sendall(b"".join(protocol.data_to_send()))
        head = _read_head(sock, deadline)
        try:
            status = int(head.split(b" ", 2)[1])
        except (IndexError, ValueError):
            raise InvalidHandshake("the server did not answer in HTTP") from None
        if status != 101:
            raise DialRefused(status)
        protocol.receive_data(head)
        events = protocol.events_received()
        if protocol.handshake_exc is not None:
            raise protocol.handshake_exc
        if not events or not isinstance(events[0], Response):
            raise InvalidHandshake("no handshake response")
        if events[0].headers.get("Sec-WebSocket-Protocol") != subprotocol:
            raise InvalidHandshake(f"the server did not accept the {subprotocol} subprotocol")
        sock.settimeout(None)
        return sock
    except BaseException:
        sock.close()
        raise


def read_frame(sock: socket.socket, limit: int = MAX_HEAD) -> tuple[int, bytes]:
    """One whole (unmasked, server-sent) WebSocket frame off a blocking socket, reading
    nothing past it: (opcode, payload)."""
    head = _recv_exactly(sock, 2)
    opcode, length = head[0] & 0x0F, head[1] & 0x7F
    if head[1] & 0x80:
        raise InvalidHandshake("the server masked a frame")
    if length == 126:
        length = int.from_bytes(_recv_exactly(sock, 2), "big")
    elif length == 127:
        length = int.from_bytes(_recv_exactly(sock, 8), "big")
    if length > limit:
        raise InvalidHandshake(f"a frame of {length} bytes where a short one was due")
    return opcode, _recv_exactly(sock, length) if length else b""


class Closed(Exception):
    """The far end closed the WebSocket instead of answering READY."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason or f"closed ({code})")
        self.code, self.reason = code, reason


def tunnel(url: str, headers: dict[str, str], timeout: float = 10.0) -> socket.socket:
    """Dial a tunnel endpoint (a ``…/forward?tunnel=PORT`` URL, docs/streams.md) and read
    its READY: the socket then carries the container port's bytes raw, both ways.

    Raises Closed (refused, with the far end's code and reason), DialRefused,
    InvalidHandshake, OSError or TimeoutError.
    """
    sock = dial(url, headers, proto.SUBPROTOCOL, timeout)
    try:
        sock.settimeout(timeout)
        opcode, payload = read_frame(sock)
        if opcode == 0x8:  # close
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            raise Closed(code, payload[2:].decode("utf-8", errors="replace"))
        try:
            ready = opcode == 0x2 and proto.check(payload)[0] is proto.FrameType.READY
        except proto.FrameError:
            ready = False
        if not ready:
            raise InvalidHandshake("the tunnel did not start with READY")
        sock.settimeout(None)
        return sock
    except BaseException:
        sock.close()
        raise
