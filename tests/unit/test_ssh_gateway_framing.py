"""The SSH gateway's framing of asyncssh connections (src/kawa.gateway.channel.py).

``Framing`` reaches into asyncssh (pinned) to coalesce its writes, split large reads and
drop its empty IGNORE packets. These tests run a real asyncssh server and client over
TCP: the framing must be installed (a new asyncssh that moved those internals fails
here instead of silently losing the speed), and bytes must pass intact both ways in
pieces larger than any read split, packet or relay frame.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable
from typing import Any

import asyncssh
import pytest
import uvloop

from kawa.gateway import channel as ssh_transport
from kawa.gateway import sent_packets as ssh_data_packets
from kawa.gateway.channel import CIPHERS, Framing
from tests.unit.ssh_rig import framed, round_trip, until


class _Echo(asyncssh.SSHTCPSession[bytes]):
    def connection_made(self, chan: asyncssh.SSHTCPChannel[bytes]) -> None:
        self.chan = chan

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self.chan.write(data)

    def eof_received(self) -> bool:
        self.chan.write_eof()
        return True


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_framed_connection_carries_bulk_both_ways(loop: str) -> None:
    """On both event loops: ``kawa up`` runs uvloop, whose transports are no subclasses
    of asyncio's."""
    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        uvloop.run(_bulk_both_ways())
    else:
        asyncio.run(_bulk_both_ways())


async def _bulk_both_ways() -> None:
    ignores: list[int] = []

    def count_ignores(conn: asyncssh.SSHServerConnection) -> None:
        send_packet = conn.send_packet

        def counting(pkttype: int, *args: bytes, handler: object = None) -> None:
            if pkttype == ssh_transport.MSG_IGNORE:
                ignores.append(pkttype)
            send_packet(pkttype, *args, handler=handler)  # type: ignore[arg-type]

        conn.send_packet = counting  # type: ignore[method-assign]

    async with framed(lambda conn, chan: _Echo(), on_connection=count_ignores) as (
        conn,
        served,
    ):
        assert conn.get_extra_info("send_cipher") in CIPHERS
        data = os.urandom(6 * 1024 * 1024 + 333)
        echoed = await round_trip(conn, data, piece=1 << 20)  # 1 MiB writes: split on arrival
        assert len(echoed) == len(data)
        assert hashlib.sha256(echoed).digest() == hashlib.sha256(data).digest()
    assert isinstance(served.framing, Framing)
    assert not ignores, f"{len(ignores)} empty IGNORE packets reached the socket"


@pytest.mark.parametrize("case", ["aes-gcm", "aes-gcm-rekeyed", "aes-gcm-cut-reads", "aes-ctr"])
def test_data_packets_are_sealed_and_opened_here_or_left_to_asyncssh(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gateway seals channel data packets itself (``ssh_data_packets``) and opens
    the channel data and window packets it receives (``ssh_received_packets``) while the
    connection runs AES-GCM: an asyncssh client, which checks every packet's tag and
    sequence, must get 8 MiB back intact, also across key re-exchanges every MiB the
    client asks for (each new key is used: packets go on being sealed and opened here,
    while the key exchange's own packets go to asyncssh). With another cipher, every
    packet is left to asyncssh and the bytes are still intact. With reads cut at every
    awkward place (inside a packet's length, after one byte of it), packets go on being
    opened here."""
    if case == "aes-gcm-cut-reads":
        whole = Framing.data_received

        def cut(self: Framing, data: bytes) -> None:
            pieces = [3, 1, 2, 37, 4099]
            start = 0
            while start < len(data):
                size = pieces[start % len(pieces)]
                whole(self, data[start : start + size])
                start += size

        monkeypatch.setattr(Framing, "data_received", cut)
    uvloop.run(_data_packets(case))


async def _data_packets(case: str) -> None:
    senders: list[ssh_data_packets.DataPackets | None] = []

    def echo(conn: asyncssh.SSHServerConnection, chan: asyncssh.SSHTCPChannel[bytes]) -> _Echo:
        senders.append(ssh_data_packets.install(conn, chan))
        return _Echo()

    options: dict[str, Any] = {"encryption_algs": ["aes128-ctr"] if case == "aes-ctr" else CIPHERS}
    if case == "aes-gcm-rekeyed":
        options["rekey_bytes"] = 1 << 20
    data = os.urandom(8 * 1024 * 1024 + 77)
    async with framed(echo, server_ciphers=[*CIPHERS, "aes128-ctr"], **options) as (
        conn,
        served,
    ):
        echoed = await round_trip(conn, data)
    assert hashlib.sha256(echoed).digest() == hashlib.sha256(data).digest()
    [packets] = senders
    received = served.framing.received
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

    async with framed(lambda conn, chan: Sink()) as (conn, served):
        _, writer = await conn.open_connection("sink", 22)
        writer.write(b"first")
        await writer.drain()
        received = served.framing.received
        assert received is not None
        await until(lambda: bool(delivered))
        assert delivered == [b"first"]
        opened = received.packets
        assert opened >= 1
        forged = (48).to_bytes(4, "big") + os.urandom(48 + 16)  # length, body, tag
        served.framing.data_received(forged)
        await asyncio.wait_for(conn.wait_closed(), 10)
    assert delivered == [b"first"]
    assert received.packets == opened


def test_closed_channels_are_let_go() -> None:
    """Channels asyncssh has closed are not held for the connection's life (each holds
    its packet buffers): after three channels opened and closed in turn on one
    connection, only the live one is registered."""
    uvloop.run(_let_go())


async def _let_go() -> None:
    async with framed(lambda conn, chan: _Echo()) as (conn, served):
        server: Any = served.framing.conn

        def let_go(chan: Any) -> Callable[[], bool]:
            return lambda: server._channels.get(chan._recv_chan) is not chan

        for round_ in range(3):
            assert await round_trip(conn, b"x" * (round_ + 1)) == b"x" * (round_ + 1)
            await until(let_go(served.channels[-1]))
        _, writer = await conn.open_connection("vps", 22)
        await until(lambda: len(served.channels) == 4)
        received = served.framing.received
        assert received is not None
        assert list(received.channels.values()) == [served.channels[-1]]
        writer.close()
