"""Stream sessions from the client: terminals and port forwarding (docs/streams.md).

``open_session`` connects a multiplexed session to a task (or, with ``path``, to
another endpoint such as a workspace: ``environments/NAME``); ``open_terminal`` gives one
terminal stream (for programs: the IDE, tests); ``forward`` serves local TCP
connections, one stream each. ``run_terminal`` (:mod:`kawa.client.terminal`) drives a
terminal from the local TTY for ``kawa connect``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from websockets.exceptions import InvalidHandshake

from kawa.client.errors import KawaError, refused, unreachable
from kawa.client.refs import path_segment
from kawa.mux.session import DEFAULT_WINDOW, Mux
from kawa.mux.stream import MuxStream, SessionClosed, StreamError
from kawa.protocol import streams as proto
from kawa.protocol.urls import API_PREFIX
from kawa.relay.pipe import SocketPipe, relay, serve_sockets
from kawa.tls.contexts import PathLike, client_context
from kawa.ws import websocket
from kawa.ws.channel import Channel
from kawa.ws.dial import DialRefused

READY_TIMEOUT = 30.0


def session_url(base: str, task: str, kind: str, path: str | None = None) -> str:
    """The session's WebSocket URL: ``tasks/TASK/KIND``, or ``PATH/KIND``."""
    ws = base.rstrip("/").replace("http://", "ws://", 1).replace("https://", "wss://", 1)
    where = path or f"tasks/{path_segment(task, 'task id')}"
    return f"{ws}{API_PREFIX}/{where}/{kind}"


def session_error(exc: SessionClosed) -> KawaError:
    """The user's message for a session the far end closed (4xxx codes carry HTTP's)."""
    status = exc.code - 4000 if 4400 <= exc.code < 4600 else None
    return KawaError(exc.reason or f"the session closed (code {exc.code})", status)


async def session_channel(
    ws_url: str, token: str, kind: str, ca_file: PathLike | None = None
) -> Channel:
    """The session's WebSocket (a wss:// host verified with ``ca_file``, by default with
    the system's CA certificates); KawaError if the host refuses or cannot be reached."""
    try:
        return await websocket.connect(
            ws_url,
            {"Authorization": f"Bearer {token}"},
            proto.SUBPROTOCOL,
            max_message=2 * proto.MAX_FRAME,
            timeout=15,
            tls=client_context(ca_file),
        )
    except DialRefused as exc:
        raise refused(f"the {kind} session", ws_url, exc.status) from None
    except (OSError, InvalidHandshake, TimeoutError) as exc:
        raise unreachable(ws_url, exc) from None


async def connect_session(
    url: str,
    token: str,
    task: str,
    kind: str,
    *,
    window: int = DEFAULT_WINDOW,
    path: str | None = None,
    ca_file: PathLike | None = None,
) -> tuple[Mux, asyncio.Task[None]]:
    """A session of ``kind`` (``terminal`` or ``forward``) to ``task`` (or to ``path``)
    that answered READY, and the task reading it; KawaError with the host's reason if it
    refused. The caller closes the mux and then awaits the reader."""
    channel = await session_channel(session_url(url, task, kind, path), token, kind, ca_file)
    mux = Mux(channel, window=window)
    reader = asyncio.create_task(mux.run(), name=f"{kind}-session")
    try:
        await mux.ready(READY_TIMEOUT)
    except BaseException as exc:
        await mux.close()
        await asyncio.gather(reader, return_exceptions=True)
        if isinstance(exc, SessionClosed):
            raise session_error(exc) from None
        raise
    return mux, reader


@asynccontextmanager
async def open_session(
    url: str,
    token: str,
    task: str,
    kind: str,
    *,
    window: int = DEFAULT_WINDOW,
    path: str | None = None,
    ca_file: PathLike | None = None,
) -> AsyncIterator[Mux]:
    """:func:`connect_session` as a context: the session is closed on the way out."""
    mux, reader = await connect_session(
        url, token, task, kind, window=window, path=path, ca_file=ca_file
    )
    try:
        yield mux
    finally:
        await mux.close()
        await asyncio.gather(reader, return_exceptions=True)


@asynccontextmanager
async def open_terminal(
    url: str,
    token: str,
    task: str,
    *,
    command: list[str] | None = None,
    rows: int = 24,
    cols: int = 80,
    term: str = "xterm-256color",
    path: str | None = None,
    ca_file: PathLike | None = None,
) -> AsyncIterator[MuxStream]:
    """A terminal in ``task``'s container (or the one ``path`` names, e.g.
    ``environments/NAME``): read its output, write keystrokes, ``resize``; after the
    output ends, ``finished`` is set and ``exit_code`` holds the code."""
    params: dict[str, Any] = {"rows": rows, "cols": cols, "term": term}
    if command:
        params["command"] = command
    async with open_session(url, token, task, "terminal", path=path, ca_file=ca_file) as mux:
        stream = await mux.open(params)
        try:
            yield stream
        finally:
            await stream.close()


async def terminal_result(stream: MuxStream, timeout: float = 10.0) -> int:
    """The exit code once the remote side finished the stream (KawaError if it failed)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stream.finished.wait(), timeout)
    if stream.exit_code is not None:
        return stream.exit_code
    if stream.mux.closed is not None and stream.mux.closed.code >= 4000:
        raise session_error(stream.mux.closed)
    raise KawaError(stream.error or "the terminal ended without an exit code")


Notify = Callable[[str], None]


async def forward(
    url: str,
    token: str,
    task: str,
    port: int,
    *,
    local_port: int | None = None,
    bind: str = "127.0.0.1",
    on_listening: Callable[[str, int, dict[str, Any]], None] | None = None,
    on_error: Notify | None = None,
    ca_file: PathLike | None = None,
) -> None:
    """Listen on ``bind:local_port`` and carry each accepted connection to ``port`` in
    the task's container, all over one session. Runs until cancelled (returns) or until
    the session ends, e.g. because the task stopped (KawaError saying why)."""
    async with open_session(url, token, task, "forward", ca_file=ca_file) as mux:
        connections: set[asyncio.Task[Any]] = set()

        async def serve(pipe: SocketPipe) -> None:
            me = asyncio.current_task()
            assert me is not None
            connections.add(me)
            try:
                stream = await mux.open({"port": port})
                await relay(pipe, stream)
            except StreamError as exc:
                if on_error is not None and not mux.ended.is_set():
                    on_error(str(exc))
            except (SessionClosed, ConnectionError):
                pass
            except asyncio.CancelledError:  # we stop it: end quietly
                pass
            finally:
                if mux.ended.is_set():
                    pipe.abort()
                else:
                    await pipe.close()
                connections.discard(me)

        server = await serve_sockets(serve, bind, port if local_port is None else local_port)
        try:
            if on_listening is not None:
                where = server.sockets[0].getsockname()
                on_listening(str(where[0]), int(where[1]), mux.ready_info)
            await mux.ended.wait()
        finally:
            server.close()
            for task_ in list(connections):
                task_.cancel()
            await asyncio.gather(*connections, return_exceptions=True)
            await server.wait_closed()
        assert mux.closed is not None
        raise session_error(mux.closed)
