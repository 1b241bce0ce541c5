"""``kawa connect``: the local terminal joined to a remote one.

The local TTY goes to raw mode (every key, Ctrl-C/Ctrl-Z/Ctrl-D included, is sent as
its bytes), window changes (SIGWINCH) become RESIZE frames, and output is written as
the bytes it arrives as (no decoding, so a UTF-8 character split over two frames is
whole on the screen). The remote exit code is returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections import deque
from collections.abc import Iterator

from kawa.client.streams import open_terminal, terminal_result
from kawa.mux.stream import SessionClosed, StreamError
from kawa.relay.pipe import relay

_READ = 65536
_HIGH = 1024 * 1024  # stop reading the keyboard while this much input waits


def terminal_size(fd: int) -> tuple[int, int]:
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return 24, 80
    return max(1, size.lines), max(1, size.columns)


@contextlib.contextmanager
def raw_mode(fd: int) -> Iterator[None]:
    """Raw mode for the duration (nothing when ``fd`` is not a terminal)."""
    if not os.isatty(fd):
        yield
        return
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    tty.setraw(fd, termios.TCSANOW)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class LocalTerminal:
    """Standard input and output as a relay pipe."""

    def __init__(self, in_fd: int, out_fd: int) -> None:
        self.in_fd, self.out_fd = in_fd, out_fd
        self._loop = asyncio.get_running_loop()
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._eof = False
        self._readable = asyncio.Event()
        self._watching = False
        try:
            self._watch()
        except (PermissionError, OSError):  # a regular file: epoll cannot wait on it
            self._threaded = True
        else:
            self._threaded = False

    def _watch(self) -> None:
        self._loop.add_reader(self.in_fd, self._on_readable)
        self._watching = True

    def _unwatch(self) -> None:
        if self._watching:
            self._loop.remove_reader(self.in_fd)
            self._watching = False

    def _on_readable(self) -> None:
        try:
            data = os.read(self.in_fd, _READ)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._eof = True
            self._unwatch()
        else:
            self._chunks.append(data)
            self._size += len(data)
            if self._size > _HIGH:
                self._unwatch()
        self._readable.set()

    async def read(self) -> bytes:
        if self._threaded:
            return await asyncio.to_thread(os.read, self.in_fd, _READ)
        while not self._chunks:
            if self._eof:
                return b""
            self._readable.clear()
            await self._readable.wait()
        data = self._chunks.popleft()
        self._size -= len(data)
        if not self._watching and not self._eof and self._size <= _HIGH // 2:
            self._watch()
        return data

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.out_fd, view) :]
            except BlockingIOError:
                await asyncio.sleep(0.005)

    async def write_eof(self) -> None:
        pass

    async def close(self) -> None:
        self._unwatch()


async def run_terminal(
    url: str,
    token: str,
    task: str,
    command: list[str] | None = None,
    in_fd: int | None = None,
    out_fd: int | None = None,
    path: str | None = None,
    ca_file: str | None = None,
) -> int:
    """A terminal in ``task`` (or at ``path``, see :func:`open_terminal`) on this
    process's standard input and output, until the remote process exits; its exit code."""
    in_fd = sys.stdin.fileno() if in_fd is None else in_fd
    out_fd = sys.stdout.fileno() if out_fd is None else out_fd
    rows, cols = terminal_size(out_fd if os.isatty(out_fd) else in_fd)
    term = os.environ.get("TERM") or "xterm-256color"
    loop = asyncio.get_running_loop()
    async with open_terminal(
        url,
        token,
        task,
        command=command,
        rows=rows,
        cols=cols,
        term=term,
        path=path,
        ca_file=ca_file,
    ) as stream:
        resizes: set[asyncio.Task[None]] = set()

        async def resize() -> None:
            rows, cols = terminal_size(out_fd if os.isatty(out_fd) else in_fd)
            with contextlib.suppress(StreamError, SessionClosed):
                await stream.resize(rows, cols)

        def on_winch() -> None:
            task_ = loop.create_task(resize())
            resizes.add(task_)
            task_.add_done_callback(resizes.discard)

        loop.add_signal_handler(signal.SIGWINCH, on_winch)
        local = LocalTerminal(in_fd, out_fd)
        try:
            with raw_mode(in_fd), contextlib.suppress(StreamError):
                await relay(local, stream, ends_with=stream, close=False)
        finally:
            loop.remove_signal_handler(signal.SIGWINCH)
            await local.close()
            await asyncio.gather(*resizes, return_exceptions=True)
        return await terminal_result(stream)
