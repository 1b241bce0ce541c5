"""Two connected sockets joined in the kernel: bytes move with ``splice(2)`` through a
pipe and never enter Python.

The host uses this for stream sessions: once both WebSocket handshakes are done, the
frames of the user's connection and of the runner's connection are the same bytes
(client frames stay masked, server frames unmasked), so the host passes them on as they
are. Each direction runs in its own thread, blocked in the kernel; an end of input is
passed on as a half-close (``shutdown(SHUT_WR)``), and :func:`splice_sockets` returns
once both directions are done.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading

from kawa.relay.kernel_pipe import open_pipe
from kawa.relay.pipe import Traffic

CHUNK = 1 << 20
"""Bytes asked of the kernel per ``splice`` call (and the pipe's capacity)."""


def available() -> bool:
    """Whether this platform has ``os.splice`` (Linux)."""
    return hasattr(os, "splice")


def _pump(src: socket.socket, dst: socket.socket) -> int:
    """Move ``src``'s bytes to ``dst`` until ``src`` ends; the count moved."""
    moved = 0
    r, w = open_pipe(CHUNK)
    try:
        while True:
            n = os.splice(src.fileno(), w, CHUNK, flags=os.SPLICE_F_MOVE)
            if n == 0:
                break
            while n:
                sent = os.splice(r, dst.fileno(), n, flags=os.SPLICE_F_MOVE)
                n -= sent
                moved += sent
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
    except OSError:  # a reset: stop both directions
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
    finally:
        os.close(r)
        os.close(w)
    return moved


def _start(src: socket.socket, dst: socket.socket, name: str) -> asyncio.Future[int]:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int] = loop.create_future()

    def run() -> None:
        try:
            result = _pump(src, dst)
        except BaseException as exc:  # handed to the waiting coroutine
            loop.call_soon_threadsafe(_settle, done, None, exc)
        else:
            loop.call_soon_threadsafe(_settle, done, result, None)

    threading.Thread(target=run, name=name, daemon=True).start()
    return done


def _settle(done: asyncio.Future[int], result: int | None, exc: BaseException | None) -> None:
    if done.done():
        return
    if exc is not None:
        done.set_exception(exc)
    else:
        done.set_result(result or 0)


async def splice_sockets(a: socket.socket, b: socket.socket) -> Traffic:
    """Relay ``a`` ⇄ ``b`` in the kernel until both directions ended; close both.

    Cancelling the call shuts both sockets down, which ends the threads at once.
    """
    for s in (a, b):
        s.setblocking(True)
    forward = _start(a, b, "splice-a-b")
    backward = _start(b, a, "splice-b-a")
    try:
        a_to_b, b_to_a = await asyncio.gather(asyncio.shield(forward), asyncio.shield(backward))
    finally:
        for s in (a, b):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        await asyncio.gather(forward, backward, return_exceptions=True)
        a.close()
        b.close()
    return Traffic(a_to_b=a_to_b, b_to_a=b_to_a)
