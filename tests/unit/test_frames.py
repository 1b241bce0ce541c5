"""The stream framing (kawa.protocol.streams): round trips and malformed frames."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kawa.protocol import streams as proto
from kawa.protocol.streams import Frame, FrameError, FrameType

stream_ids = st.integers(1, proto.MAX_STREAM_ID)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)


def raw(kind: int, stream: int, payload: bytes = b"", flags: int = 0) -> bytes:
    return struct.pack("!BBI", kind, flags, stream) + payload


@given(stream_ids, st.binary(max_size=4096))
def test_data_round_trip(stream: int, payload: bytes) -> None:
    frame = proto.decode(proto.data_frame(stream, payload))
    assert (frame.type, frame.stream, frame.payload) == (FrameType.DATA, stream, payload)


@given(stream_ids, st.dictionaries(st.text(max_size=10), json_values, max_size=5))
def test_open_round_trip(stream: int, params: dict[str, object]) -> None:
    frame = proto.decode(proto.open_frame(stream, params).encode())
    assert frame.type is FrameType.OPEN and frame.params() == params


@given(stream_ids, st.integers(1, proto.MAX_WINDOW))
def test_window_round_trip(stream: int, grant: int) -> None:
    assert proto.decode(proto.window_frame(stream, grant).encode()).increment() == grant


@given(stream_ids, st.integers(1, 65535), st.integers(1, 65535))
def test_resize_round_trip(stream: int, rows: int, cols: int) -> None:
    assert proto.decode(proto.resize_frame(stream, rows, cols).encode()).size() == (rows, cols)


@given(stream_ids, st.integers(-(2**31), 2**31 - 1))
def test_exit_round_trip(stream: int, code: int) -> None:
    assert proto.decode(proto.exit_frame(stream, code).encode()).exit_code() == code


@given(stream_ids, st.text(max_size=200))
def test_error_round_trip(stream: int, message: str) -> None:
    assert proto.decode(proto.error_frame(stream, message).encode()).message() == message


@pytest.mark.parametrize("make", [proto.eof_frame, proto.close_frame])
def test_empty_frames_round_trip(make: object) -> None:
    frame = make(7)  # type: ignore[operator]
    assert proto.decode(frame.encode()) == frame


def test_ready_is_the_only_frame_on_stream_zero() -> None:
    frame = proto.decode(proto.ready_frame({"node": "n1"}).encode())
    assert frame.stream == 0 and frame.params() == {"node": "n1"}
    assert proto.decode(proto.ready_frame().encode()).params() == {}
    with pytest.raises(FrameError, match="DATA on stream 0"):
        proto.decode(raw(FrameType.DATA, 0, b"x"))
    with pytest.raises(FrameError, match="READY belongs on stream 0"):
        proto.decode(raw(FrameType.READY, 5))


@given(st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_raise_frame_error(message: bytes) -> None:
    try:
        frame = proto.decode(message)
    except FrameError as exc:
        assert exc.reason and exc.code in (proto.CLOSE_PROTOCOL, proto.CLOSE_TOO_BIG)
    else:
        assert frame.encode() == message


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (b"", "shorter than the 6-byte header"),
        (b"\x02\x00\x00\x00", "shorter than the 6-byte header"),
        (raw(0, 1), "unknown frame type 0"),
        (raw(200, 1), "unknown frame type 200"),
        (raw(FrameType.DATA, 1, b"x", flags=1), "flags must be 0"),
        (raw(FrameType.EOF, 1, b"x"), "EOF carries no payload"),
        (raw(FrameType.CLOSE, 1, b"xy"), "CLOSE carries no payload"),
        (raw(FrameType.WINDOW, 1, b"\x00\x01"), "WINDOW payload must be 4 bytes"),
        (raw(FrameType.WINDOW, 1, b"\x00\x00\x00\x00"), "WINDOW increment 0"),
        (raw(FrameType.WINDOW, 1, b"\xff\xff\xff\xff"), "outside 1.."),
        (raw(FrameType.RESIZE, 1, b"\x00\x00\x00\x50"), "at least one row"),
        (raw(FrameType.RESIZE, 1, b"\x00\x18\x00"), "RESIZE payload must be 4 bytes"),
        (raw(FrameType.EXIT, 1, b"\x00" * 5), "EXIT payload must be 4 bytes"),
    ],
)
def test_malformed_frames_are_refused_with_a_reason(message: bytes, reason: str) -> None:
    with pytest.raises(FrameError, match=reason) as caught:
        proto.decode(message)
    assert caught.value.code == proto.CLOSE_PROTOCOL


def test_huge_frame_is_refused_as_too_big() -> None:
    limit = proto.MAX_FRAME
    assert proto.decode(raw(FrameType.DATA, 1, b"x" * proto.MAX_PAYLOAD)).stream == 1
    with pytest.raises(FrameError, match=f"exceeds the limit of {limit}") as caught:
        proto.check(raw(FrameType.DATA, 1, b"x" * (proto.MAX_PAYLOAD + 1)))
    assert caught.value.code == proto.CLOSE_TOO_BIG


def test_text_message_is_not_a_frame() -> None:
    with pytest.raises(FrameError, match="text messages") as caught:
        proto.decode("hello")
    assert caught.value.code == proto.CLOSE_UNSUPPORTED


def test_open_parameters_must_be_a_json_object() -> None:
    with pytest.raises(ValueError, match="not JSON"):
        Frame(FrameType.OPEN, 1, b"{nope").params()
    with pytest.raises(ValueError, match="JSON object"):
        Frame(FrameType.OPEN, 1, b"[1, 2]").params()
    with pytest.raises(ValueError, match="not JSON"):
        Frame(FrameType.OPEN, 1, b"\xff\xfe").params()


def test_check_does_not_copy_and_agrees_with_decode() -> None:
    message = memoryview(proto.data_frame(9, b"abc"))
    assert proto.check(message) == (FrameType.DATA, 9)


def test_close_reason_fits_a_close_frame() -> None:
    long = "é" * 100
    cut = proto.close_reason(long)
    assert len(cut.encode()) <= 123 and cut.endswith("...")
    assert proto.close_reason("short") == "short"
