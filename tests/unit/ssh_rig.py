"""An asyncssh server set up as the SSH gateway sets one up (on asyncssh's fast path, or
not), and a client connected to it: shared by the tests of the gateway's fast path and
tunnel joint."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncssh

from kawa.gateway import asyncssh_fast_path
from kawa.gateway.asyncssh_fast_path import DataPackets, FastPath
from kawa.gateway.channel import CIPHERS, WINDOW

Session = Any
"""What a channel's session is: an asyncssh session object."""


@dataclass
class Served:
    """What the server side made: one fast path per connection (None: not taken), one
    channel and its data packet sealer per request."""

    fast_paths: list[FastPath | None] = field(default_factory=list)
    channels: list[asyncssh.SSHTCPChannel[bytes]] = field(default_factory=list)
    packets: list[DataPackets | None] = field(default_factory=list)

    @property
    def fast(self) -> FastPath:
        [fast] = self.fast_paths
        assert fast is not None, "not on the fast path"
        return fast


@contextlib.asynccontextmanager
async def served(
    session: Callable[[DataPackets | None], Session],
    *,
    fast: bool = True,
    on_connection: Callable[[asyncssh.SSHServerConnection], None] | None = None,
    server_ciphers: list[str] = CIPHERS,
    **client_options: Any,
) -> AsyncIterator[tuple[asyncssh.SSHClientConnection, Served]]:
    """A server that puts each connection on the fast path when ``fast`` holds
    (``on_connection`` runs first) and answers each ``direct-tcpip`` request with a
    channel (window :data:`WINDOW`, on the fast path too) and ``session(packets)``,
    ``packets`` sealing the channel's data where the fast path does; a client
    connected to it."""
    made = Served()

    class Server(asyncssh.SSHServer):
        def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
            if on_connection is not None:
                on_connection(conn)
            made.fast_paths.append(asyncssh_fast_path.install(conn) if fast else None)
            self.conn = conn

        def begin_auth(self, username: str) -> bool:
            return False  # no authentication

        def connection_requested(
            self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
        ) -> Any:
            chan = self.conn.create_tcp_channel(window=WINDOW)
            path = made.fast_paths[-1]
            packets = path.channel(chan) if path is not None else None
            made.channels.append(chan)
            made.packets.append(packets)
            return chan, session(packets)

    server = await asyncssh.create_server(
        Server,
        "127.0.0.1",
        0,
        server_host_keys=[asyncssh.generate_private_key("ssh-ed25519")],
        encryption_algs=server_ciphers,
        compression_algs=["none"],
    )
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncssh.connect(
            "127.0.0.1", port, known_hosts=None, username="u", client_keys=None, **client_options
        ) as client:
            yield client, made
    finally:
        server.close()
        await server.wait_closed()


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``check`` until it holds; fail after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def round_trip(
    client: asyncssh.SSHClientConnection, data: bytes, piece: int = 256 * 1024
) -> bytes:
    """Send ``data`` on a new ``direct-tcpip`` channel in ``piece``-sized writes, then
    EOF, while reading everything that comes back until the server's EOF; then close
    the channel."""
    reader, writer = await client.open_connection("vps", 22)

    async def send() -> None:
        for start in range(0, len(data), piece):
            writer.write(data[start : start + piece])
            await writer.drain()
        writer.write_eof()

    sender = asyncio.create_task(send())
    try:
        back: bytes = await asyncio.wait_for(reader.read(), 60)
        await sender
    finally:
        sender.cancel()
        writer.close()
    return back
