"""The SSH gateway's fast path through asyncssh's internals (kawa.gateway.asyncssh_fast_path).

It coalesces asyncssh's writes, splits large reads, drops its empty IGNORE packets and
seals and opens channel packets itself. These tests run a real asyncssh server and
client over TCP: on the pinned asyncssh the fast path must be taken (a new asyncssh
fails here instead of silently losing the speed), any other version must get asyncssh's
own path, and bytes must pass intact both ways, on either path, in pieces larger than
any read split, packet or relay frame.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncssh
import pytest
import uvloop

from kawa.gateway import asyncssh_fast_path
from kawa.gateway.asyncssh_fast_path import MSG_IGNORE, SUPPORTED_VERSIONS, FastPath
from kawa.gateway.channel import CIPHERS
from kawa.gateway.transport import CoalescingTransport
from tests.unit.ssh_rig import round_trip, served, until


class _Echo(asyncssh.SSHTCPSession[bytes]):
    def connection_made(self, chan: asyncssh.SSHTCPChannel[bytes]) -> None:
        self.chan = chan

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self.chan.write(data)

    def eof_received(self) -> bool:
        self.chan.write_eof()
        return True


def test_the_pinned_asyncssh_is_a_supported_version() -> None:
    """The asyncssh pinned in pyproject.toml (the one installed) gets the fast path."""
    pyproject = Path(__file__).parents[2] / "pyproject.toml"
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    [pin] = [m[1] for d in deps if (m := re.fullmatch(r"asyncssh==(\S+)", d))]
    assert pin in SUPPORTED_VERSIONS
    assert asyncssh.__version__ == pin
    assert asyncssh_fast_path.unsupported() is None


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "asyncssh-path"])
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_connection_carries_bulk_both_ways(loop: str, fast: bool) -> None:
    """On both event loops: ``kawa up`` runs uvloop, whose transports are no subclasses
    of asyncio's; on the fast path and on asyncssh's own."""
    if loop == "uvloop":
        uvloop.run(_bulk_both_ways(fast))
    else:
        asyncio.run(_bulk_both_ways(fast))


async def _bulk_both_ways(fast: bool) -> None:
    ignores: list[int] = []

    def count_ignores(conn: asyncssh.SSHServerConnection) -> None:
        send_packet = conn.send_packet

        def counting(pkttype: int, *args: bytes, handler: object = None) -> None:
            if pkttype == MSG_IGNORE and args == (asyncssh.packet.String(b""),):
                ignores.append(pkttype)
            send_packet(pkttype, *args, handler=handler)  # type: ignore[arg-type]

        conn.send_packet = counting  # type: ignore[method-assign]

    async with served(lambda packets: _Echo(), fast=fast, on_connection=count_ignores) as (
        conn,
        made,
    ):
        assert conn.get_extra_info("send_cipher") in CIPHERS
        data = os.urandom(6 * 1024 * 1024 + 333)
        echoed = await round_trip(conn, data, piece=1 << 20)  # 1 MiB writes: split on arrival
        assert len(echoed) == len(data)
        assert hashlib.sha256(echoed).digest() == hashlib.sha256(data).digest()
        if fast:
            assert isinstance(made.fast.conn._transport, CoalescingTransport)
    if fast:
        assert isinstance(made.fast, FastPath)
        assert made.packets[0] is not None and made.packets[0].packets > 0
        assert not ignores, f"{len(ignores)} empty IGNORE packets reached the socket"
    else:
        assert made.fast_paths == [None] and made.packets == [None]
        assert ignores, "asyncssh's own path sends its empty IGNORE packets"


def test_an_unsupported_asyncssh_version_gets_asyncssh_own_path(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An asyncssh the fast path was not written for is left as it is (with a warning),
    and the connection works on asyncssh's own path."""
    monkeypatch.setattr(asyncssh, "__version__", "99.0.0")
    assert asyncssh_fast_path.unsupported() is not None
    with caplog.at_level(logging.WARNING, logger=asyncssh_fast_path.__name__):
        uvloop.run(_unsupported())
    assert any("99.0.0" in r.getMessage() for r in caplog.records), caplog.records


async def _unsupported() -> None:
    async with served(lambda packets: _Echo()) as (conn, made):
        data = os.urandom(3 * 1024 * 1024 + 5)
        echoed = await round_trip(conn, data)
        assert hashlib.sha256(echoed).digest() == hashlib.sha256(data).digest()
    assert made.fast_paths == [None] and made.packets == [None]


@pytest.mark.parametrize("case", ["aes-gcm", "aes-gcm-rekeyed", "aes-gcm-cut-reads", "aes-ctr"])
def test_data_packets_are_sealed_and_opened_here_or_left_to_asyncssh(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gateway seals channel data packets itself (``DataPackets``) and opens the
    channel data and window packets it receives (``ReceivedPackets``) while the
    connection runs AES-GCM: an asyncssh client, which checks every packet's tag and
    sequence, must get 8 MiB back intact, also across key re-exchanges every MiB the
    client asks for (each new key is used: packets go on being sealed and opened here,
    while the key exchange's own packets go to asyncssh). With another cipher, every
    packet is left to asyncssh and the bytes are still intact. With reads cut at every
    awkward place (inside a packet's length, after one byte of it), packets go on being
    opened here."""
    if case == "aes-gcm-cut-reads":
        whole = CoalescingTransport.data_received

        def cut(self: CoalescingTransport, data: bytes) -> None:
            pieces = [3, 1, 2, 37, 4099]
            start = 0
            while start < len(data):
                size = pieces[start % len(pieces)]
                whole(self, data[start : start + size])
                start += size

        monkeypatch.setattr(CoalescingTransport, "data_received", cut)
    uvloop.run(_data_packets(case))


async def _data_packets(case: str) -> None:
    options: dict[str, Any] = {"encryption_algs": ["aes128-ctr"] if case == "aes-ctr" else CIPHERS}
    if case == "aes-gcm-rekeyed":
        options["rekey_bytes"] = 1 << 20
    data = os.urandom(8 * 1024 * 1024 + 77)
    async with served(
        lambda packets: _Echo(), server_ciphers=[*CIPHERS, "aes128-ctr"], **options
    ) as (conn, made):
        echoed = await round_trip(conn, data)
    assert hashlib.sha256(echoed).digest() == hashlib.sha256(data).digest()
    [packets] = made.packets
    received = made.fast.received
    assert packets is not None and received is not None, "not installed"
    if case == "aes-ctr":
        assert packets.packets == 0
        assert received.packets == 0
    else:
        assert packets.packets >= len(data) // (32 * 1024) * 0.9, packets.packets
        assert packets.keys >= (2 if case == "aes-gcm-rekeyed" else 1), packets.keys
        # the asyncssh client sends an empty IGNORE before each data packet: both opened here
        assert received.packets >= 2 * len(data) // (32 * 1024) * 0.9, received.packets
        assert received.keys >= (2 if case == "aes-gcm-rekeyed" else 1), received.keys


def test_a_received_packet_with_a_bad_tag_ends_the_connection() -> None:
    """A sealed packet that does not open is not taken here: asyncssh gets it and drops
    the connection (MAC error), and nothing of it reaches the channel."""
    uvloop.run(_bad_tag())


async def _bad_tag() -> None:
    delivered: list[bytes] = []

    class Sink(asyncssh.SSHTCPSession[bytes]):
        def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
            delivered.append(data)

    async with served(lambda packets: Sink()) as (conn, made):
        _, writer = await conn.open_connection("sink", 22)
        writer.write(b"first")
        await writer.drain()
        received = made.fast.received
        assert received is not None
        await until(lambda: bool(delivered))
        assert delivered == [b"first"]
        opened = received.packets
        assert opened >= 1
        forged = (48).to_bytes(4, "big") + os.urandom(48 + 16)  # length, body, tag
        made.fast.transport.data_received(forged)
        await asyncio.wait_for(conn.wait_closed(), 10)
    assert delivered == [b"first"]
    assert received.packets == opened


def test_closed_channels_are_let_go() -> None:
    """Channels asyncssh has closed are not held for the connection's life (each holds
    its packet buffers): after three channels opened and closed in turn on one
    connection, only the live one is registered."""
    uvloop.run(_let_go())


async def _let_go() -> None:
    async with served(lambda packets: _Echo()) as (conn, made):
        server: Any = made.fast.conn

        def let_go(chan: Any) -> Callable[[], bool]:
            return lambda: server._channels.get(chan._recv_chan) is not chan

        for round_ in range(3):
            assert await round_trip(conn, b"x" * (round_ + 1)) == b"x" * (round_ + 1)
            await until(let_go(made.channels[-1]))
        _, writer = await conn.open_connection("vps", 22)
        await until(lambda: len(made.channels) == 4)
        received = made.fast.received
        assert received is not None
        assert list(received.channels.values()) == [made.channels[-1]]
        writer.close()
