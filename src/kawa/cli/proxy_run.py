"""``kawa proxy ID PORT`` (the ``ProxyCommand`` of ``kawa ssh-config`` blocks) and the
forward stream that ``kawa ssh`` relays when the cluster carries no tunnels: stdin/stdout
joined to a tunnel, or to one stream of a forward session (docs/vps.md)."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING, Any

from kawa.cli.output import CliError

if TYPE_CHECKING:
    import asyncio
    import socket

    from kawa.cli.lite import Credentials
    from kawa.mux.session import Mux
    from kawa.relay.pipe import Pipe

SSHD_WAIT = 10.0
"""Seconds ``kawa ssh`` retries port 22 of a running VPS where nothing listens yet (its
sshd is starting: the container's main process is sshd, so it is not gone)."""


PORT_POLL = 0.02
"""Seconds between tries of a port where nothing listens yet."""


def run_loop(main: Any) -> Any:
    """Run ``main`` on uvloop when it is installed (as ``kawa forward`` does), else asyncio."""
    import asyncio

    sys.setswitchinterval(0.001)  # the relay shares the interpreter with a waiting thread
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


class Forward:
    """One forward stream to a port of a task's container, in a session of its own;
    ``first``: what the server sent first, when it was waited for."""

    def __init__(
        self, mux: Mux, reader: asyncio.Future[Any], stream: Pipe, first: bytes = b""
    ) -> None:
        self.mux, self.reader, self.stream, self.first = mux, reader, stream, first

    async def close(self) -> None:
        import asyncio

        await self.mux.close()
        await asyncio.gather(self.reader, return_exceptions=True)


async def open_forward(
    creds: Credentials, task_id: str, port: int, *, server_first: bool = False
) -> Forward:
    """A forward session to ``task_id`` and one stream to ``port``; CliError with the
    host's reason if refused (:func:`kawa.client.streams.connect_session`).

    With ``server_first`` (a protocol whose server speaks first, as SSH's does), the
    server's first bytes are read into ``first`` before returning, and a port where
    nothing listens yet is tried again for up to ``SSHD_WAIT`` seconds."""
    import asyncio

    from kawa.client.errors import KawaError
    from kawa.client.streams import connect_session

    try:
        mux, reader = await connect_session(
            creds.url, creds.token, task_id, "forward", ca_file=creds.ca_file
        )
    except KawaError as exc:
        raise CliError(exc.message) from None
    try:
        if not server_first:
            return Forward(mux, reader, await mux.open({"port": port}))
        stream, first = await _server_first(mux, port)
    except BaseException:
        await mux.close()
        await asyncio.gather(reader, return_exceptions=True)
        raise
    return Forward(mux, reader, stream, first)


async def _server_first(mux: Mux, port: int) -> tuple[Pipe, bytes]:
    import asyncio

    from kawa.mux.stream import StreamError

    loop = asyncio.get_running_loop()
    deadline = loop.time() + SSHD_WAIT
    while True:
        stream = await mux.open({"port": port})
        try:
            return stream, bytes(await stream.read())
        except StreamError as exc:
            if not str(exc).startswith("connection refused") or loop.time() > deadline:
                raise CliError(str(exc)) from None
        await stream.close()
        await asyncio.sleep(PORT_POLL)


class _StdioPipe:
    """stdin/stdout as a relay pipe. stdin is read by a daemon thread, so a read
    blocked at exit never holds the process."""

    def __init__(self) -> None:
        import asyncio
        import threading

        self.run_loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=4)
        threading.Thread(target=self._reader, name="proxy-stdin", daemon=True).start()

    def _reader(self) -> None:
        import asyncio

        while True:
            try:
                chunk = os.read(0, 65536)
            except OSError:
                chunk = b""
            asyncio.run_coroutine_threadsafe(self._queue.put(chunk), self.run_loop).result()
            if not chunk:
                return

    async def read(self) -> bytes:
        return await self._queue.get()

    async def write(self, data: bytes) -> None:
        import asyncio

        await asyncio.to_thread(_write_all, data)

    async def write_eof(self) -> None:
        os.close(1)

    async def close(self) -> None:
        return None


def _write_all(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(1, view) :]


async def _proxy(creds: Credentials, task_id: str, port: int) -> None:
    from kawa.relay.pipe import relay

    forward = await open_forward(creds, task_id, port)
    try:
        await relay(_StdioPipe(), forward.stream)
    finally:
        await forward.close()


def run_proxy(task_id: str, port: int) -> int:
    """``kawa proxy ID PORT``: relay stdin/stdout to one port of a task."""
    from kawa.cli import lite
    from kawa.client.errors import KawaError
    from kawa.client.tunnel import TunnelUnavailable, open_tunnel
    from kawa.mux.stream import SessionClosed, StreamError

    creds = lite.credentials()
    try:
        tunnel = open_tunnel(creds.url, creds.token, task_id, port)
    except TunnelUnavailable:  # this cluster carries sessions only: relay one stream
        tunnel = None
    except KawaError as exc:
        raise CliError(exc.message) from None
    if tunnel is not None:
        with tunnel:
            join_stdio(tunnel)
        return 0
    try:
        run_loop(_proxy(creds, task_id, port))
    except (StreamError, SessionClosed, ConnectionError) as exc:
        raise CliError(f"kawa proxy: {exc}") from None
    return 0


def join_stdio(sock: socket.socket) -> None:
    """Copy stdin to ``sock`` (a thread) and ``sock`` to stdout until the far end closes;
    stdin's end is passed on as a half-close."""
    import socket
    import threading

    def up() -> None:
        try:
            while chunk := os.read(0, _CHUNK):
                sock.sendall(chunk)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)

    threading.Thread(target=up, name="proxy-stdin", daemon=True).start()
    try:
        while chunk := sock.recv(_CHUNK):
            _write_all(chunk)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            os.close(1)


_CHUNK = 256 * 1024
