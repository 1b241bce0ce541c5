"""Many byte streams over one WebSocket: the frame format (specified in docs/streams.md).

Every binary WebSocket message is exactly one frame::

    byte 0      1       2 ........ 5    6 ...........
         type   flags   stream id       payload
         u8     u8 (0)  u32, big-endian 0..MAX_PAYLOAD bytes

The WebSocket message boundary delimits the frame, so there is no length field. Pure
encoding and decoding: no I/O. :func:`decode` raises :class:`FrameError` for anything
that breaks the format; the receiver then closes the session with ``error.code`` and
``error.reason``.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

SUBPROTOCOL = "kawa.streams.v1"
HEADER = struct.Struct("!BBI")
HEADER_SIZE = HEADER.size
MAX_PAYLOAD = 256 * 1024
MAX_FRAME = HEADER_SIZE + MAX_PAYLOAD
MAX_STREAM_ID = 2**32 - 1
INITIAL_WINDOW = 256 * 1024
"""Bytes each side may send on a new stream, in each direction, before any WINDOW."""
MAX_WINDOW = 2**31 - 1
SESSION = 0
"""Stream id 0 is the session itself: it carries READY and nothing else."""

_U32 = struct.Struct("!I")
_I32 = struct.Struct("!i")
_SIZE = struct.Struct("!HH")

# WebSocket close codes a session ends with (RFC 6455 codes, and 4000 + HTTP status).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL = 1002
CLOSE_UNSUPPORTED = 1003
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_CONFLICT = 4409
CLOSE_GONE = 4410
CLOSE_NO_TUNNEL = 4501
"""This path cannot carry a tunnel (the host relays frames, or the runner cannot hand
its socket over): use a multiplexed session instead."""
CLOSE_UNREACHABLE = 4502


class FrameType(IntEnum):
    OPEN = 1
    """Open stream ``id``; the payload is a JSON object saying what to connect to."""
    DATA = 2
    """Bytes of the stream, at most the sender's remaining window."""
    EOF = 3
    """The sender sends no more DATA on this stream (half-close); it still reads."""
    CLOSE = 4
    """The sender is done with the stream in both directions."""
    ERROR = 5
    """Like CLOSE, with a UTF-8 message saying why (connection refused, unknown id…)."""
    WINDOW = 6
    """The sender grants the peer this many more bytes of DATA (u32)."""
    RESIZE = 7
    """A terminal's new size: rows u16, cols u16."""
    EXIT = 8
    """A terminal's process exited with this code (i32); CLOSE follows."""
    READY = 9
    """On stream 0 only: the session reaches its endpoint; optional JSON details."""


_EMPTY = frozenset({FrameType.EOF, FrameType.CLOSE})
_FIXED = {FrameType.WINDOW: 4, FrameType.RESIZE: 4, FrameType.EXIT: 4}


class FrameError(ValueError):
    """A message that is not a valid frame: the session must be closed."""

    def __init__(self, reason: str, code: int = CLOSE_PROTOCOL) -> None:
        super().__init__(reason)
        self.reason, self.code = reason, code


@dataclass(frozen=True, slots=True)
class Frame:
    type: FrameType
    stream: int
    payload: bytes | bytearray = b""

    def encode(self) -> bytes:
        return HEADER.pack(self.type, 0, self.stream) + self.payload

    def params(self) -> dict[str, Any]:
        """The JSON object of an OPEN or READY frame (ValueError if it is not one)."""
        if not self.payload:
            return {}
        try:
            value = json.loads(self.payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"parameters are not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise ValueError("parameters must be a JSON object")
        return value

    def increment(self) -> int:
        return int(_U32.unpack(self.payload)[0])

    def size(self) -> tuple[int, int]:
        rows, cols = _SIZE.unpack(self.payload)
        return int(rows), int(cols)

    def exit_code(self) -> int:
        return int(_I32.unpack(self.payload)[0])

    def message(self) -> str:
        return self.payload.decode("utf-8", errors="replace")


def check(message: bytes | bytearray | memoryview | str) -> tuple[FrameType, int]:
    """Validate a message as a frame without copying its payload: (type, stream id)."""
    if isinstance(message, str):
        raise FrameError("text messages are not frames: send binary", CLOSE_UNSUPPORTED)
    size = len(message)
    if size > MAX_FRAME:
        raise FrameError(f"frame of {size} bytes exceeds the limit of {MAX_FRAME}", CLOSE_TOO_BIG)
    if size < HEADER_SIZE:
        raise FrameError(f"frame of {size} bytes is shorter than the {HEADER_SIZE}-byte header")
    raw_type, flags, stream = HEADER.unpack_from(message)
    try:
        kind = FrameType(raw_type)
    except ValueError:
        raise FrameError(f"unknown frame type {raw_type}") from None
    if flags:
        raise FrameError(f"flags must be 0 in {SUBPROTOCOL} (got {flags:#04x})")
    if (stream == SESSION) != (kind is FrameType.READY):
        raise FrameError(
            "READY belongs on stream 0" if kind is FrameType.READY else f"{kind.name} on stream 0"
        )
    length = size - HEADER_SIZE
    if kind in _EMPTY and length:
        raise FrameError(f"{kind.name} carries no payload (got {length} bytes)")
    want = _FIXED.get(kind)
    if want is not None:
        if length != want:
            raise FrameError(f"{kind.name} payload must be {want} bytes (got {length})")
        if kind is FrameType.WINDOW:
            grant = _U32.unpack_from(message, HEADER_SIZE)[0]
            if not 0 < grant <= MAX_WINDOW:
                raise FrameError(f"WINDOW increment {grant} is outside 1..{MAX_WINDOW}")
        elif kind is FrameType.RESIZE and 0 in _SIZE.unpack_from(message, HEADER_SIZE):
            raise FrameError("RESIZE needs at least one row and one column")
    return kind, stream


def decode(message: bytes | bytearray | memoryview | str) -> Frame:
    """The frame in ``message``. A ``bytearray`` is consumed: its header is cut off in
    place (no copy) and the rest becomes the payload."""
    kind, stream = check(message)
    assert not isinstance(message, str)
    if isinstance(message, bytearray):
        del message[:HEADER_SIZE]
        return Frame(kind, stream, message)
    return Frame(kind, stream, bytes(message[HEADER_SIZE:]))


# -- constructors ----------------------------------------------------------------------
def _json(params: dict[str, Any]) -> bytes:
    return json.dumps(params, separators=(",", ":")).encode()


def open_frame(stream: int, params: dict[str, Any]) -> Frame:
    return Frame(FrameType.OPEN, stream, _json(params))


def data_frame(stream: int, payload: bytes | memoryview) -> bytes:
    """An encoded DATA frame (the hot path: built without a Frame object)."""
    return data_header(stream) + payload


def data_header(stream: int) -> bytes:
    """The header of a DATA frame, for sending it in two parts (header, payload)."""
    return HEADER.pack(FrameType.DATA, 0, stream)


def eof_frame(stream: int) -> Frame:
    return Frame(FrameType.EOF, stream)


def close_frame(stream: int) -> Frame:
    return Frame(FrameType.CLOSE, stream)


def error_frame(stream: int, message: str) -> Frame:
    return Frame(FrameType.ERROR, stream, message.encode()[:MAX_PAYLOAD])


def window_frame(stream: int, increment: int) -> Frame:
    return Frame(FrameType.WINDOW, stream, _U32.pack(increment))


def resize_frame(stream: int, rows: int, cols: int) -> Frame:
    return Frame(FrameType.RESIZE, stream, _SIZE.pack(rows, cols))


def exit_frame(stream: int, code: int) -> Frame:
    return Frame(FrameType.EXIT, stream, _I32.pack(code))


def ready_frame(details: dict[str, Any] | None = None) -> Frame:
    return Frame(FrameType.READY, SESSION, _json(details) if details else b"")


def close_reason(text: str, limit: int = 123) -> str:
    """``text`` cut to fit a WebSocket close reason (123 bytes of UTF-8)."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    return raw[: limit - 3].decode("utf-8", errors="ignore") + "..."
