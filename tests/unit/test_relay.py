"""The relay primitive and the multiplexer, over real sockets on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from kawa.mux.session import Mux
from kawa.mux.stream import MuxStream, SessionClosed, StreamError
from kawa.protocol import streams as proto
from kawa.relay.pipe import SocketPipe, open_socket, relay, serve_sockets
from kawa.ws.websockets_channel import WebsocketsChannel
from tests.support import until

Accept = Callable[[MuxStream], Awaitable[None]]
SMALL_WINDOW = 256 * 1024


async def read_all(pipe: SocketPipe | MuxStream) -> bytes:
    parts = []
    while chunk := await pipe.read():
        parts.append(chunk)
    return b"".join(parts)


@contextlib.asynccontextmanager
async def tcp_server(
    handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[int]:
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def session(
    accept: Accept, window: int = SMALL_WINDOW, max_window: int = SMALL_WINDOW
) -> AsyncIterator[tuple[Mux, list[Mux]]]:
    """A client Mux joined over a real WebSocket to a server Mux that runs ``accept``
    (windows fixed at ``window`` unless ``max_window`` lets them grow)."""
    servers: list[Mux] = []

    async def handler(conn: ServerConnection) -> None:
        mux = Mux(WebsocketsChannel(conn), accept=accept, window=window, max_window=max_window)
        servers.append(mux)
        await mux.run()

    async with serve(handler, "127.0.0.1", 0, compression=None, max_size=4 * proto.MAX_FRAME) as ws:
        port = ws.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", compression=None, max_size=None) as conn:
            client = Mux(WebsocketsChannel(conn), window=window, max_window=max_window)
            reader = asyncio.create_task(client.run())
            try:
                yield client, servers
            finally:
                await client.close()
                await asyncio.gather(reader, return_exceptions=True)


async def echo(stream: MuxStream) -> None:
    while chunk := await stream.read():
        await stream.write(chunk)
    await stream.write_eof()


# -- relay over TCP ---------------------------------------------------------------------
async def test_relay_half_close_keeps_the_other_direction_open() -> None:
    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()  # until the client's EOF
        writer.write(data.upper())
        await writer.drain()
        writer.close()

    traffic = []
    async with tcp_server(upstream) as up_port:

        async def relay_side(pipe: SocketPipe) -> None:
            traffic.append(await relay(pipe, await open_socket("127.0.0.1", up_port)))

        server = await serve_sockets(relay_side, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            client = await open_socket("127.0.0.1", port)
            await client.write(b"hello " * 1000)
            await client.write_eof()
            assert await read_all(client) == b"HELLO " * 1000
            await client.close()
            await until(lambda: traffic)
    assert (traffic[0].a_to_b, traffic[0].b_to_a) == (6000, 6000)


async def test_cancelled_relay_closes_both_ends_and_leaves_no_task() -> None:
    ends: list[bytes] = []

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ends.append(await reader.read())  # returns at EOF: the relay closed its side
        writer.close()

    async with tcp_server(upstream) as up_port:
        a = await open_socket("127.0.0.1", up_port)
        accepted: list[asyncio.StreamWriter] = []

        async def idle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(writer)

        async with tcp_server(idle) as port:
            b = await open_socket("127.0.0.1", port)
            before = asyncio.all_tasks()
            job = asyncio.create_task(relay(a, b))
            await asyncio.sleep(0.05)
            job.cancel()
            with pytest.raises(asyncio.CancelledError):
                await job
            assert not asyncio.all_tasks() - before, "the relay left tasks behind"
            await until(lambda: ends)
            assert a.transport.is_closing() and b.transport.is_closing()
            for writer in accepted:
                writer.close()


# -- the multiplexer ------------------------------------------------------------------------
async def test_many_streams_echo_with_half_close() -> None:
    async with session(echo) as (client, _):

        async def one(i: int) -> None:
            data = os.urandom(1 + i * 37_000)
            stream = await client.open({"n": i})
            sender = asyncio.create_task(stream.write(data))
            received = await read_all_after(stream, sender)
            assert hashlib.sha256(received).digest() == hashlib.sha256(data).digest()

        await asyncio.gather(*(one(i) for i in range(20)))
        assert not client.streams, "finished streams are forgotten"


async def read_all_after(stream: MuxStream, sender: asyncio.Task[None]) -> bytes:
    parts = []
    while True:
        if sender.done() and not stream.eof_out:
            await stream.write_eof()
        chunk = await stream.read()
        if not chunk:
            break
        parts.append(chunk)
    await sender
    return b"".join(parts)


async def test_slow_reader_is_bounded_by_the_window() -> None:
    total = 16 * 1024 * 1024
    sent: list[MuxStream] = []

    async def firehose(stream: MuxStream) -> None:
        sent.append(stream)
        block = b"x" * proto.MAX_PAYLOAD
        for _ in range(total // len(block)):
            await stream.write(block)
        await stream.write_eof()

    async with session(firehose) as (client, _):
        stream = await client.open({})
        got, worst = 0, 0
        while chunk := await stream.read():
            got += len(chunk)
            await asyncio.sleep(0.001 if got > total // 2 else 0.01)  # a slow reader
            worst = max(worst, stream.buffered, sent[0].bytes_out - got)
        assert got == total
        assert worst <= SMALL_WINDOW, f"{worst} bytes in flight with a {SMALL_WINDOW} window"


async def test_windows_grow_for_a_consumer_that_keeps_up_and_not_for_a_slow_one() -> None:
    total, ceiling = 16 * 1024 * 1024, 8 * SMALL_WINDOW
    sent: list[MuxStream] = []

    async def firehose(stream: MuxStream) -> None:
        sent.append(stream)
        block = b"x" * proto.MAX_PAYLOAD
        for _ in range(total // len(block)):
            await stream.write(block)
        await stream.write_eof()

    async with session(firehose, max_window=ceiling) as (client, _):
        fast = await client.open({})
        got = 0
        while chunk := await fast.read():
            got += len(chunk)
            assert fast.buffered <= fast.window <= ceiling
        assert got == total and fast.window == ceiling, fast.window

        slow = await client.open({})
        got, worst = 0, 0
        while chunk := await slow.read():
            got += len(chunk)
            await asyncio.sleep(0.005)  # the sender always has bytes waiting for it
            worst = max(worst, slow.buffered, sent[1].bytes_out - got)
        assert got == total
        assert slow.window <= 2 * SMALL_WINDOW, f"a slow reader's window grew to {slow.window}"
        assert worst <= slow.window


async def test_a_stalled_stream_does_not_hold_up_the_others() -> None:
    async def serve(stream: MuxStream) -> None:
        if stream.params.get("flood"):
            while True:
                await stream.write(b"y" * 65536)
        await echo(stream)

    async with session(serve) as (client, servers):
        stalled = await client.open({"flood": True})
        await until(lambda: stalled.buffered >= SMALL_WINDOW)
        for _ in range(5):
            lively = await client.open({})
            await lively.write(b"ping")
            await lively.write_eof()
            async with asyncio.timeout(5):
                assert await read_all(lively) == b"ping"
        assert stalled.buffered <= SMALL_WINDOW
        await stalled.close()  # tear down one stream: its server handler ends
        await until(lambda: stalled.id not in servers[0].streams)
        assert len(servers[0].streams) == 0


async def test_unknown_stream_gets_an_error_and_the_session_goes_on() -> None:
    async with session(echo) as (client, _):
        errors: list[proto.Frame] = []
        original = client._dispatch

        async def spy(frame: proto.Frame) -> None:
            if frame.type is proto.FrameType.ERROR:
                errors.append(frame)
            await original(frame)

        client._dispatch = spy  # type: ignore[method-assign]
        await client.send(proto.data_frame(999, b"who?"))
        await client.send(proto.resize_frame(998, 10, 10).encode())
        await until(lambda: len(errors) == 2)
        assert [(f.stream, f.message()) for f in errors] == [
            (999, "unknown stream id 999"),
            (998, "unknown stream id 998"),
        ]
        stream = await client.open({})
        await stream.write(b"still here")
        await stream.write_eof()
        assert await read_all(stream) == b"still here"


async def test_huge_or_malformed_frame_closes_the_session_with_a_reason() -> None:
    for message, code, reason in [
        (b"\x02\x00" + b"\x00\x00\x00\x01" + b"z" * (proto.MAX_PAYLOAD + 1), 1009, "exceeds"),
        (b"\x63\x00\x00\x00\x00\x01", 1002, "unknown frame type 99"),
    ]:
        async with session(echo) as (client, _):
            stream = await client.open({})
            await client.send(message)
            await asyncio.wait_for(client.ended.wait(), 5)
            assert client.closed is not None
            assert client.closed.code == code and reason in client.closed.reason
            with pytest.raises(StreamError, match="session closed"):
                await stream.read()
            with pytest.raises((StreamError, SessionClosed)):
                await stream.write(b"late")


async def test_data_beyond_the_window_fails_the_stream() -> None:
    async with session(echo) as (client, _):
        stream = await client.open({})
        stream._credit = 10 * proto.MAX_PAYLOAD  # cheat: more credit than was granted
        with contextlib.suppress(StreamError, SessionClosed):
            for _ in range(10):
                await stream.write(b"q" * proto.MAX_PAYLOAD)
        await asyncio.wait_for(stream.finished.wait(), 5)
        with pytest.raises(StreamError, match="beyond the granted window"):
            while await stream.read():
                pass


async def test_refused_open_reports_the_handlers_error() -> None:
    async def refuse(stream: MuxStream) -> None:
        await stream.fail("connection refused: nothing listens on port 9")

    async with session(refuse) as (client, _):
        stream = await client.open({"port": 9})
        with pytest.raises(StreamError, match="nothing listens on port 9"):
            await stream.read()
        with pytest.raises(StreamError):
            await stream.write(b"x")
