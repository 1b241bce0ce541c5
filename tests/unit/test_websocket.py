"""Kawa's own WebSocket (``kawa.ws.websocket``), its dialer and uvicorn's socket
hand-over, over real sockets on 127.0.0.1: against each other, against the
``websockets`` library on either side, and against hand-made malformed frames."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import time
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import uvloop
from websockets.asyncio.client import connect as lib_connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

from kawa.mux.session import Mux
from kawa.mux.stream import MuxStream
from kawa.protocol import streams as proto
from kawa.protocol.streams import SUBPROTOCOL, FrameError
from kawa.relay.pipe import adopt_socket, relay
from kawa.ws import websocket
from kawa.ws.channel import ChannelClosed
from kawa.ws.detach import (
    PUBLIC_PROTOCOL,
    WRITTEN_FOR,
    detach_socket,
    offers_detach,
    server_protocol,
)
from kawa.ws.dial import DialRefused, dial
from kawa.ws.uvicorn_detach import DetachableWebSocketProtocol

LIMIT = 1 << 20
Scope = dict[str, Any]


class EchoApp:
    """An ASGI app: accepts, takes the socket from uvicorn and echoes every message on
    Kawa's channel; records how each connection ended. ``/refuse`` is refused."""

    def __init__(self) -> None:
        self.endings: asyncio.Queue[Exception] = asyncio.Queue()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        assert scope["type"] == "websocket"
        await receive()  # websocket.connect
        if scope["path"] == "/refuse":
            await send({"type": "websocket.close", "code": 1008})
            return
        offered = scope.get("subprotocols") or []
        if scope["path"] == "/plain":
            offered = []
        await send({"type": "websocket.accept", "subprotocol": offered[0] if offered else None})
        sock = await detach_socket(scope)
        assert sock is not None, "uvicorn handed the socket over"
        channel = await websocket.adopt(sock, client=False, max_message=LIMIT)
        try:
            while True:
                await channel.send(await channel.recv())
        except (ChannelClosed, FrameError) as exc:
            await self.endings.put(exc)
            if isinstance(exc, FrameError):
                await channel.close(exc.code, exc.reason)
            else:
                await channel.close(1000, "")


def config(app: Any) -> uvicorn.Config:
    """uvicorn as Kawa's servers run it (no compression, the detachable protocol)."""
    return uvicorn.Config(
        app,
        lifespan="off",
        log_level="warning",
        ws=DetachableWebSocketProtocol,
        ws_per_message_deflate=False,
    )


@contextlib.asynccontextmanager
async def echo_server() -> AsyncIterator[tuple[str, EchoApp]]:
    app = EchoApp()
    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(config(app))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        yield f"ws://127.0.0.1:{sock.getsockname()[1]}", app
    finally:
        server.should_exit = True
        await task
        sock.close()


async def lean_client(url: str) -> websocket.WebSocketChannel:
    channel = await websocket.connect(url, {}, SUBPROTOCOL, max_message=LIMIT, timeout=5)
    assert isinstance(channel, websocket.WebSocketChannel)
    return channel


SIZES = [0, 1, 125, 126, 65535, 65536, 300_000, LIMIT]


async def test_lean_client_and_server_echo_every_length_class() -> None:
    async with echo_server() as (url, app):
        channel = await lean_client(f"{url}/echo")
        for size in SIZES:
            message = os.urandom(size)
            await channel.send_parts((message[:7], message[7:]))
            assert bytes(await channel.recv()) == message, size
        await channel.close(4001, "done")
        ending = await asyncio.wait_for(app.endings.get(), 5)
        assert isinstance(ending, ChannelClosed) and (ending.code, ending.reason) == (4001, "done")


async def test_the_websockets_library_as_client_pings_fragments_and_closes() -> None:
    async with echo_server() as (url, app):
        async with lib_connect(
            f"{url}/echo", subprotocols=[Subprotocol(SUBPROTOCOL)], max_size=None
        ) as conn:
            for size in SIZES:
                message = os.urandom(size)
                await conn.send(message)
                assert await conn.recv() == message
            await conn.send([b"frag", b"mented", b"!"])  # one message in three frames
            assert await conn.recv() == b"fragmented!"
            pong = await conn.ping(b"are you there")
            await asyncio.wait_for(pong, 5)
            await conn.close(4409, "enough")
        ending = await asyncio.wait_for(app.endings.get(), 5)
        assert isinstance(ending, ChannelClosed) and (ending.code, ending.reason) == (
            4409,
            "enough",
        )


async def test_the_websockets_library_as_server() -> None:
    async def handler(conn: ServerConnection) -> None:
        async for message in conn:
            if message == b"bye":
                await conn.close(4410, "task ended")
                return
            await conn.send(message)

    async with serve(
        handler, "127.0.0.1", 0, subprotocols=[Subprotocol(SUBPROTOCOL)], max_size=None
    ) as server:
        port = server.sockets[0].getsockname()[1]
        channel = await lean_client(f"ws://127.0.0.1:{port}/")
        for size in SIZES:
            message = os.urandom(size)
            await channel.send(message)
            assert bytes(await channel.recv()) == message
        await channel.send(b"bye")
        with pytest.raises(ChannelClosed) as closed:
            await channel.recv()
        assert (closed.value.code, closed.value.reason) == (4410, "task ended")
        await channel.close(1000, "")


def _frame(first: int, payload: bytes, *, mask: bool = True, length: int | None = None) -> bytes:
    size = len(payload) if length is None else length
    head = bytes([first]) + (
        bytes([(0x80 if mask else 0) | size])
        if size < 126
        else bytes([(0x80 if mask else 0) | 127]) + struct.pack("!Q", size)
    )
    if not mask:
        return head + payload
    key = b"\x01\x02\x03\x04"
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def _read_close(sock: socket.socket) -> tuple[int, str]:
    """Read a server's (unmasked) frames off a raw socket until its close frame."""
    data = b""
    sock.settimeout(5)

    def need(n: int) -> None:
        nonlocal data
        while len(data) < n:
            chunk = sock.recv(65536)
            assert chunk, f"the connection ended without a close frame: {data!r}"
            data += chunk

    while True:
        need(2)
        opcode, length, head = data[0] & 0x0F, data[1] & 0x7F, 2
        if length == 126:
            need(4)
            length, head = struct.unpack("!H", data[2:4])[0], 4
        elif length == 127:
            need(10)
            length, head = struct.unpack("!Q", data[2:10])[0], 10
        need(head + length)
        payload, data = data[head : head + length], data[head + length :]
        if opcode == 0x8:
            return struct.unpack("!H", payload[:2])[0], payload[2:].decode()


VIOLATIONS = [
    pytest.param(_frame(0x82, b"abc", mask=False), 1002, "mask", id="unmasked-client-frame"),
    pytest.param(_frame(0xC2, b"abc"), 1002, "reserved bits", id="reserved-bit"),
    pytest.param(_frame(0x83, b"abc"), 1002, "opcode", id="unknown-opcode"),
    pytest.param(_frame(0x09, b"ping"), 1002, "control frame", id="fragmented-ping"),
    pytest.param(_frame(0x82, b"", length=LIMIT + 1), 1009, "limit", id="oversized"),
    pytest.param(_frame(0x81, b"hello"), 1003, "text", id="text-message"),
    pytest.param(_frame(0x88, b"\x03"), 1002, "one byte", id="one-byte-close"),
    pytest.param(_frame(0x80, b"orphan"), 1002, "continuation", id="orphan-continuation"),
]


@pytest.mark.parametrize(("raw", "code", "words"), VIOLATIONS)
async def test_protocol_violations_close_with_a_code_and_reason(
    raw: bytes, code: int, words: str
) -> None:
    async with echo_server() as (url, app):
        sock = await asyncio.to_thread(dial, f"{url}/echo", {}, SUBPROTOCOL)
        with sock:
            sock.sendall(raw)
            got_code, reason = await asyncio.to_thread(_read_close, sock)
        assert got_code == code and words in reason, (got_code, reason)
        ending = await asyncio.wait_for(app.endings.get(), 5)
        assert getattr(ending, "code", None) == code


async def test_dial_refusals_are_clear() -> None:
    async with echo_server() as (url, _):
        with pytest.raises(DialRefused) as refused:
            await asyncio.to_thread(dial, f"{url}/refuse", {}, SUBPROTOCOL)
        assert refused.value.status == 403
        with pytest.raises(InvalidHandshake, match="subprotocol"):
            await asyncio.to_thread(dial, f"{url}/plain", {}, SUBPROTOCOL)

    async def not_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(not_http, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(InvalidHandshake):
            await asyncio.to_thread(dial, f"ws://127.0.0.1:{port}/", {}, SUBPROTOCOL)


async def test_a_lost_connection_ends_recv_and_send() -> None:
    async with echo_server() as (url, _):
        channel = await lean_client(f"{url}/echo")
        assert channel.transport is not None
        channel.transport.abort()
        with pytest.raises(ChannelClosed) as closed:
            await channel.recv()
        assert closed.value.code == 1006
        with pytest.raises(ChannelClosed):
            await channel.send(b"late")
        await channel.close(1000, "")  # never raises


async def test_the_websockets_library_client_sees_a_lean_servers_close() -> None:
    """A server-side close (what the runner does when a task ends) reaches the client."""

    async def closing_app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept", "subprotocol": SUBPROTOCOL})
        sock = await detach_socket(scope)
        assert sock is not None
        channel = await websocket.adopt(sock, client=False, max_message=LIMIT)
        await channel.send(b"ready")
        await channel.close(4410, "task 7 ended")

    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(config(closing_app))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        url = f"ws://127.0.0.1:{sock.getsockname()[1]}/"
        async with lib_connect(url, subprotocols=[Subprotocol(SUBPROTOCOL)]) as conn:
            assert await conn.recv() == b"ready"
            with pytest.raises(ConnectionClosed) as closed:
                await conn.recv()
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4410, "task 7 ended")
    finally:
        server.should_exit = True
        await task
        sock.close()


async def test_uvicorn_keeps_a_socket_with_compression_negotiated() -> None:
    """Frames compressed by permessage-deflate are not Kawa's to read: no hand-over."""
    results: list[socket.socket | None] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        results.append(await detach_socket(scope))
        await send({"type": "websocket.close", "code": 1000})

    sock = socket.create_server(("127.0.0.1", 0))
    cfg = config(app)
    cfg.ws_per_message_deflate = True
    server = uvicorn.Server(cfg)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        url = f"ws://127.0.0.1:{sock.getsockname()[1]}/"
        async with lib_connect(url) as conn:  # offers permessage-deflate by default
            with pytest.raises(ConnectionClosed):
                await conn.recv()
        assert results == [None]
    finally:
        server.should_exit = True
        await task
        sock.close()


def test_the_detachable_protocol_is_chosen_only_on_the_uvicorn_it_was_written_for() -> None:
    """The subclass of uvicorn's private protocol follows the pinned uvicorn: bumping
    the pin means checking the subclass and adding the version to WRITTEN_FOR."""
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    pinned = [d.split("==", 1)[1] for d in dependencies if d.startswith("uvicorn==")]
    assert len(pinned) == 1, dependencies
    assert pinned[0] in WRITTEN_FOR
    assert uvicorn.__version__ in WRITTEN_FOR, "the installed uvicorn is not the pinned one"
    assert server_protocol() is DetachableWebSocketProtocol
    assert server_protocol(pinned[0]) is DetachableWebSocketProtocol
    assert server_protocol("0.0.1") == PUBLIC_PROTOCOL


async def test_on_another_uvicorn_sessions_work_without_detach() -> None:
    """The public fallback: uvicorn's own protocol offers no detach, and the
    application's WebSocket works through ASGI messages as before."""
    offered: list[bool] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()  # websocket.connect
        await send({"type": "websocket.accept", "subprotocol": SUBPROTOCOL})
        offered.append(offers_detach(scope))
        assert await detach_socket(scope) is None
        message = await receive()
        await send({"type": "websocket.send", "bytes": message["bytes"]})
        await send({"type": "websocket.close", "code": 1000})

    sock = socket.create_server(("127.0.0.1", 0))
    cfg = config(app)
    cfg.ws = server_protocol("0.0.1")
    server = uvicorn.Server(cfg)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.01)
        url = f"ws://127.0.0.1:{sock.getsockname()[1]}/"
        channel = await lean_client(url)
        await channel.send(b"hello")
        assert await asyncio.wait_for(channel.recv(), 10) == b"hello"
        await channel.close(1000, "")
        assert offered == [False]
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.mark.parametrize("slow", [False, True], ids=["fast-reader", "slow-reader"])
def test_payloads_spliced_to_a_local_socket_keep_their_order(slow: bool) -> None:
    """A stream relayed to a local socket: large DATA payloads go from the session's
    socket to the local one through a kernel pipe while the relay waits, ordinary
    delivery takes over whenever anything is queued. 32 MiB of random bytes must arrive
    in order, with a reader that keeps up and with one that lags, and the window stays
    within its bounds. On uvloop, as Kawa's processes run (its reads come back to back,
    which is what reordered them once)."""
    uvloop.run(_spliced_in_order(slow))


async def _spliced_in_order(slow: bool) -> None:
    data = os.urandom(32 << 20)

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept", "subprotocol": SUBPROTOCOL})
        sock = await detach_socket(scope)
        assert sock is not None
        channel = await websocket.adopt(sock, client=False, max_message=2 * proto.MAX_FRAME)

        async def firehose(stream: MuxStream) -> None:
            view = memoryview(data)
            for i in range(0, len(data), 1 << 20):
                await stream.write(view[i : i + (1 << 20)])
            await stream.write_eof()
            await stream.read()

        mux = Mux(channel, accept=firehose)
        await mux.send(proto.ready_frame({}).encode())
        await mux.run()

    listener = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(config(app))
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        url = f"ws://127.0.0.1:{listener.getsockname()[1]}/"
        channel = await websocket.connect(
            url, {}, SUBPROTOCOL, max_message=2 * proto.MAX_FRAME, timeout=5
        )
        mux = Mux(channel)
        reading = asyncio.create_task(mux.run())
        await mux.ready(5)
        stream = await mux.open({})
        ours, theirs = socket.socketpair()
        pipe = await adopt_socket(ours)

        def sink() -> bytes:
            got = bytearray()
            while chunk := theirs.recv(1 << 20):
                got += chunk
                if slow:
                    time.sleep(0.0005)
            return bytes(got)

        received = asyncio.ensure_future(asyncio.to_thread(sink))
        relaying = asyncio.create_task(relay(stream, pipe))
        try:
            got = await asyncio.wait_for(received, 30)
        finally:
            theirs.shutdown(socket.SHUT_RDWR)  # a failure must not leave the reader waiting
            theirs.close()
        try:
            await asyncio.wait_for(relaying, 10)
            assert len(got) == len(data)
            assert got == data, "bytes arrived out of order"
            # How far the window grew depends on who waited for whom, which the machine's
            # load decides here; the growth rules have tests of their own that do not
            # depend on timing (spliced bytes, reads that waited, a lagging reader).
            assert mux.window <= stream.window <= mux.max_window, stream.window
        finally:  # on a failure too: nothing of the session outlives the test's loop
            relaying.cancel()
            await asyncio.gather(relaying, return_exceptions=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(mux.close(), 5)
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)
    finally:
        server.should_exit = server.force_exit = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(serving, 10)
        listener.close()


def test_a_large_payload_behind_a_queued_message_still_goes_direct() -> None:
    """A small DATA frame and two large ones arrive back to back. When the first large
    header is read, the small frame still waits for the session's reader: the channel
    must hold the header back for a turn of the loop (the small frame is delivered, the
    relay parks) and then splice the large payloads, instead of reading them into Python
    one after another. All bytes arrive in order."""
    uvloop.run(_held_then_direct())


async def _held_then_direct() -> None:
    async with _relayed_stream() as (channel, stream, far, reader):
        small, large = os.urandom(100), [os.urandom(200 * 1024) for _ in range(2)]
        frames = [proto.data_frame(stream.id, p) for p in (small, *large)]
        sending = asyncio.ensure_future(
            asyncio.to_thread(far.sendall, b"".join(_server_frame(f) for f in frames))
        )
        expected = small + b"".join(large)

        def read_all() -> bytes:
            got = bytearray()
            while len(got) < len(expected) and (chunk := reader.recv(1 << 20)):
                got += chunk
            return bytes(got)

        try:
            got = await asyncio.wait_for(asyncio.to_thread(read_all), 10)
        finally:
            reader.shutdown(socket.SHUT_RDWR)
        await sending
        assert got == expected, "bytes lost or out of order"
        # Read into Python, they would have been 0; a local socket's buffer bounds how
        # much the kernel takes at once (the rest goes the ordinary way, in order).
        assert channel.direct_bytes >= 128 * 1024, channel.direct_bytes


@contextlib.asynccontextmanager
async def _relayed_stream() -> AsyncIterator[
    tuple[websocket.WebSocketChannel, MuxStream, socket.socket, socket.socket]
]:
    """A client session on one end of a socket pair, the test playing the server on the
    other (``far``), and one stream relayed to a local socket whose other end is
    ``reader``: yielded once the relay waits for data. The test shuts ``reader`` down."""
    ours, far = socket.socketpair()
    channel = await websocket.adopt(ours, client=True, max_message=2 * proto.MAX_FRAME)
    mux = Mux(channel)
    reading = asyncio.create_task(mux.run())
    dest, reader = socket.socketpair()
    relaying: asyncio.Task[Any] | None = None
    try:
        stream = await mux.open({})  # stream 1; its window is grown to 2 MiB
        relaying = asyncio.create_task(relay(stream, await adopt_socket(dest)))
        async with asyncio.timeout(5):
            while stream._parked is None:  # the relay waits for data before any arrives
                await asyncio.sleep(0.001)
        yield channel, stream, far, reader
    finally:
        if relaying is not None:
            relaying.cancel()
            await asyncio.gather(relaying, return_exceptions=True)
        far.close()  # the far end goes away: the close below need not wait for it
        await mux.close()
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)
        reader.close()


def _server_frame(payload: bytes) -> bytes:
    """One unmasked binary WebSocket frame (what a server sends)."""
    return websocket.frame_header(websocket.OP_BINARY, len(payload)) + payload


def test_bytes_spliced_to_a_waiting_relay_grow_the_window() -> None:
    """Payload bytes that go straight to the destination of a waiting relay count as
    consumed by a consumer that keeps up: once a window's worth went that way, the
    stream's window has grown (as it does for reads that had to wait)."""
    uvloop.run(_direct_bytes_grow_the_window())


async def _direct_bytes_grow_the_window() -> None:
    async with _relayed_stream() as (_, stream, _far, reader):
        draining = asyncio.ensure_future(asyncio.to_thread(_drain, reader))
        try:
            start = stream.window
            async with asyncio.timeout(10):
                for _ in range(start // proto.MAX_PAYLOAD):  # all the peer may send
                    sink = stream.direct_target(proto.MAX_PAYLOAD)
                    assert sink is not None, "the waiting relay's destination takes it"
                    view = memoryview(bytes(proto.MAX_PAYLOAD))
                    while view:
                        view = view[sink.write(view) :]
                        await asyncio.sleep(0)  # the reader drains the destination
            assert stream.window > start, stream.window
        finally:
            reader.shutdown(socket.SHUT_RDWR)
            await draining


def _drain(sock: socket.socket) -> int:
    got = 0
    while chunk := sock.recv(1 << 20):
        got += len(chunk)
    return got
