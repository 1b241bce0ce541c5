"""Kernel pipes that carry spliced bytes: opening one at a given capacity, and reading
back what is known to wait in one."""

from __future__ import annotations

import contextlib
import fcntl
import os


def open_pipe(capacity: int, *, nonblocking: bool = False) -> tuple[int, int]:
    """A new close-on-exec pipe (read end, write end), asked to hold ``capacity`` bytes.
    The kernel may refuse the size (a smaller pipe only means more calls)."""
    flags = os.O_CLOEXEC | (os.O_NONBLOCK if nonblocking else 0)
    pipe_r, pipe_w = os.pipe2(flags)
    with contextlib.suppress(OSError):
        fcntl.fcntl(pipe_w, fcntl.F_SETPIPE_SZ, capacity)
    return pipe_r, pipe_w


def drain_pipe(pipe_r: int, size: int) -> bytes:
    """Exactly ``size`` bytes that are known to be waiting in a pipe."""
    parts = []
    while size:
        chunk = os.read(pipe_r, size)
        if not chunk:
            raise ConnectionError("the pipe ended early")
        parts.append(chunk)
        size -= len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)
