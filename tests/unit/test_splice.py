"""Two TCP connections on 127.0.0.1 joined in the kernel (``kawa.relay.splice``)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket

from kawa.relay.splice import splice_sockets


def pair() -> tuple[socket.socket, socket.socket]:
    """Both ends of one TCP connection on 127.0.0.1: (outer, inner)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        outer = socket.create_connection(server.getsockname())
        inner, _ = server.accept()
    return outer, inner


def send_all(sock: socket.socket, data: bytes, close_write: bool) -> None:
    sock.sendall(data)
    if close_write:
        sock.shutdown(socket.SHUT_WR)


def read_to_eof(sock: socket.socket) -> bytes:
    parts = []
    sock.settimeout(30)
    while chunk := sock.recv(1 << 20):
        parts.append(chunk)
    return b"".join(parts)


async def test_both_directions_arrive_intact_and_half_close_passes_on() -> None:
    left, left_inner = pair()
    right, right_inner = pair()
    joined = asyncio.create_task(splice_sockets(left_inner, right_inner))
    ahead, back = os.urandom(24 << 20), os.urandom(8 << 20)
    try:
        # left finishes first; right keeps sending after it saw left's end (half-close)
        got_right = asyncio.ensure_future(asyncio.to_thread(read_to_eof, right))
        await asyncio.to_thread(send_all, left, ahead, True)
        assert hashlib.sha256(await got_right).digest() == hashlib.sha256(ahead).digest()
        got_left = asyncio.ensure_future(asyncio.to_thread(read_to_eof, left))
        await asyncio.to_thread(send_all, right, back, True)
        assert await got_left == back
        traffic = await asyncio.wait_for(joined, 10)
        assert (traffic.a_to_b, traffic.b_to_a) == (len(ahead), len(back))
    finally:
        for s in (left, right):
            s.close()


async def test_cancelling_shuts_both_connections_down() -> None:
    left, left_inner = pair()
    right, right_inner = pair()
    joined = asyncio.create_task(splice_sockets(left_inner, right_inner))
    try:
        left.sendall(b"hello")
        right.settimeout(10)
        assert await asyncio.to_thread(right.recv, 5) == b"hello"
        joined.cancel()
        await asyncio.gather(joined, return_exceptions=True)
        assert left_inner.fileno() == -1 and right_inner.fileno() == -1, "both closed"
        left.settimeout(10)
        assert left.recv(10) == b"", "the outer ends see the connection end"
        assert right.recv(10) == b""
    finally:
        for s in (left, right):
            s.close()


async def test_a_reset_ends_both_directions() -> None:
    left, left_inner = pair()
    right, right_inner = pair()
    joined = asyncio.create_task(splice_sockets(left_inner, right_inner))
    try:
        left.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        left.close()  # RST
        await asyncio.wait_for(joined, 10)
        right.settimeout(10)
        assert await asyncio.to_thread(right.recv, 10) == b""
    finally:
        right.close()
