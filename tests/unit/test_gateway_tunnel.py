"""A gateway channel joined to a socket (kawa.gateway.tunnel).

A real asyncssh server, set up as the gateway sets one up (on asyncssh's fast path and
without it), joins each
``direct-tcpip`` channel to a TCP connection to a local peer (where the gateway joins it
to the runner's tunnel to a VPS's sshd); a real asyncssh client drives the channel.
Checked: bytes intact both ways with half-close, what the client sent before the join
goes first, a peer that stops reading and a client that stops reading each stall the
other side instead of being buffered without bound, and cancelling the join resets both.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import asyncssh
import pytest
import uvloop

from kawa.gateway.asyncssh_fast_path import DataPackets
from kawa.gateway.channel import ChannelSession
from tests.unit.ssh_rig import round_trip, served, until

MB = 1024 * 1024
Peer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Rig:
    client: asyncssh.SSHClientConnection
    joins: list[asyncio.Task[None]] = field(default_factory=list)
    sessions: list[ChannelSession] = field(default_factory=list)


@contextlib.asynccontextmanager
async def _rig(peer: Peer, fast: bool, hold: asyncio.Event | None = None) -> AsyncIterator[Rig]:
    """A server joining each channel to a connection to ``peer``, on the fast path (and
    sealing) as the gateway does when ``fast``; with ``hold``, each join waits for that
    event (the channel buffers what arrives meanwhile)."""
    far = await asyncio.start_server(peer, "127.0.0.1", 0)
    far_port = far.sockets[0].getsockname()[1]
    joins: list[asyncio.Task[None]] = []
    sessions: list[ChannelSession] = []

    async def join(session: ChannelSession) -> None:
        if hold is not None:
            await hold.wait()
        sock = socket.socket()
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", far_port))
        await session.join(sock)

    def start(session: ChannelSession) -> None:
        joins.append(asyncio.get_running_loop().create_task(join(session)))

    def joined(packets: DataPackets | None) -> ChannelSession:
        session = ChannelSession(start)
        session.packets = packets
        sessions.append(session)
        return session

    try:
        async with served(joined, fast=fast) as (client, made):
            assert [path is not None for path in made.fast_paths] == [fast]
            yield Rig(client, joins, sessions)
    finally:
        for task in joins:
            task.cancel()
        far.close()
        await far.wait_closed()


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1 << 20):
        writer.write(data)
        await writer.drain()
    writer.write_eof()  # half-close: everything before it has gone back
    writer.close()
    await writer.wait_closed()


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "asyncssh-path"])
def test_bytes_pass_both_ways_and_the_join_ends_with_both_sides(fast: bool) -> None:
    """9 MiB out and back through a joined channel (more than the channel window and
    any read), the client's EOF passed on as a half-close and the peer's back; the join
    returns once both the channel and the socket are closed."""
    uvloop.run(_both_ways(fast))


async def _both_ways(fast: bool) -> None:
    data = os.urandom(9 * MB + 11)
    async with _rig(_echo, fast) as rig:
        back = await round_trip(rig.client, data)
        assert len(back) == len(data) and _digest(back) == _digest(data)
        [join] = rig.joins
        await asyncio.wait_for(join, 10)  # both ends closed on their own
        [session] = rig.sessions
        assert session.joint is not None and session.joint.ended == {"channel", "socket"}


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "asyncssh-path"])
def test_what_the_channel_received_before_the_join_goes_first(fast: bool) -> None:
    """The runner's tunnel takes a moment to open: the client's first bytes (an SSH
    client's version line) arrive before it and must reach the peer first, in order."""
    uvloop.run(_early(fast))


async def _early(fast: bool) -> None:
    hold = asyncio.Event()
    async with _rig(_echo, fast, hold) as rig:
        reader, writer = await rig.client.open_connection("vps", 22)
        writer.write(b"SSH-2.0-early\r\n")
        await until(lambda: bool(rig.sessions) and bool(rig.sessions[0].chunks))
        hold.set()
        writer.write(b"after the join")
        writer.write_eof()
        back = await asyncio.wait_for(reader.read(), 10)
        assert back == b"SSH-2.0-early\r\nafter the join"


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "asyncssh-path"])
def test_a_peer_that_stops_reading_stalls_the_client(fast: bool) -> None:
    """While the peer reads nothing, the client can put no more than about the
    channel window (plus socket buffers) into the gateway: the channel's reading is
    paused. Once the peer reads, every byte arrives."""
    uvloop.run(_peer_stalls(fast))


async def _peer_stalls(fast: bool) -> None:
    reading = asyncio.Event()
    got: list[bytes] = []

    async def slow_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reading.wait()
        while data := await reader.read(1 << 20):
            got.append(data)
        writer.close()

    data = os.urandom(96 * MB)
    async with _rig(slow_peer, fast) as rig:
        _, writer = await rig.client.open_connection("vps", 22)
        sent = 0
        with contextlib.suppress(TimeoutError):
            while sent < len(data):
                writer.write(data[sent : sent + MB])
                await asyncio.wait_for(writer.drain(), 2.0)
                sent += MB
        assert sent < 48 * MB, f"{sent // MB} MiB taken while the peer read nothing"
        [session] = rig.sessions
        assert session.chan is not None and session.chan._recv_paused
        reading.set()
        writer.write(data[sent + MB :])  # the stalled MiB is in asyncssh's buffer
        writer.write_eof()
        await asyncio.wait_for(writer.drain(), 60)
        await until(lambda: sum(map(len, got)) >= len(data), 60)
        assert _digest(b"".join(got)) == _digest(data)


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "asyncssh-path"])
def test_a_client_that_stops_reading_stalls_the_peer(fast: bool) -> None:
    """While the client reads nothing, the peer can write no more than about the
    channel window (plus socket buffers): reading from the socket is paused. Once the
    client reads, every byte arrives."""
    uvloop.run(_client_stalls(fast))


async def _client_stalls(fast: bool) -> None:
    data = os.urandom(96 * MB)
    written = [0]
    done = asyncio.Event()

    async def pushing_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for start in range(0, len(data), MB):
            writer.write(data[start : start + MB])
            await writer.drain()
            written[0] = start + MB
        writer.write_eof()
        done.set()
        await reader.read()
        writer.close()

    async with _rig(pushing_peer, fast) as rig:
        reader, writer = await rig.client.open_connection("vps", 22)
        await until(lambda: written[0] > 0)
        before = -1
        while written[0] != before:  # until the peer stops getting anywhere
            before = written[0]
            await asyncio.sleep(1.0)
        assert not done.is_set()
        assert written[0] < 48 * MB, f"{written[0] // MB} MiB taken while the client read nothing"
        back = await asyncio.wait_for(reader.read(), 60)
        assert _digest(back) == _digest(data)
        writer.write_eof()


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "asyncssh-path"])
def test_cancelling_the_join_resets_both_sides(fast: bool) -> None:
    """The gateway stopping cancels its joins: the client's channel and the peer's
    connection both end at once."""
    uvloop.run(_cancelled(fast))


async def _cancelled(fast: bool) -> None:
    peer_done = asyncio.Event()

    async def waiting_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.read()
        peer_done.set()
        writer.close()

    async with _rig(waiting_peer, fast) as rig:
        reader, writer = await rig.client.open_connection("vps", 22)
        writer.write(b"hello")
        await until(lambda: bool(rig.joins) and bool(rig.sessions[0].joint))
        [join] = rig.joins
        join.cancel()
        await asyncio.wait_for(peer_done.wait(), 10)
        assert await asyncio.wait_for(reader.read(), 10) == b""
