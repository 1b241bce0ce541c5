"""The host keeps one HTTP client per runner address, and closes those of addresses no
node has any more: their kept-alive connections are closed (seen by real loopback
servers), the others stay open, and a client made after the addresses were read is
never closed by that reading."""

from __future__ import annotations

import asyncio
import re

from kawa.host.runner_link import RunnerLink

ACK = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"ok":true}'


class Runner:
    """A loopback server answering every request with an ack, keeping the connection;
    ``closed`` is set when the client closes it."""

    def __init__(self) -> None:
        self.closed = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # each request: its head, then the body its head announces
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if length:
                    await reader.readexactly(int(length.group(1)))
                writer.write(ACK)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed.set()  # the client closed the connection
        finally:
            writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()


def test_clients_of_addresses_no_node_has_are_closed_and_the_others_kept() -> None:
    async def main() -> None:
        kept, removed = Runner(), Runner()
        kept_url, removed_url = await kept.start(), await removed.start()
        link = RunnerLink("secret")
        try:
            for url in (kept_url, removed_url):
                assert (await link.control(url, "1", "kill")).ok
            made = link.clients_made()
            assert made == 2
            await link.keep_only({kept_url}, made)
            await asyncio.wait_for(removed.closed.wait(), 10)  # its connection is closed
            assert not kept.closed.is_set()
            assert (await link.control(kept_url, "1", "kill")).ok  # the same connection
            assert not kept.closed.is_set()
            assert (await link.control(removed_url, "1", "kill")).ok  # a new client if asked
        finally:
            await link.close()
            await kept.stop()
            await removed.stop()

    asyncio.run(main())


def test_a_client_made_after_the_addresses_were_read_stays() -> None:
    async def main() -> None:
        early, late = Runner(), Runner()
        early_url, late_url = await early.start(), await late.start()
        link = RunnerLink("secret")
        try:
            assert (await link.control(early_url, "1", "kill")).ok
            made = link.clients_made()  # the addresses are read now: only early's
            assert (await link.control(late_url, "1", "kill")).ok  # a node registered since
            await link.keep_only({early_url}, made)
            assert (await link.control(late_url, "1", "kill")).ok
            assert not late.closed.is_set(), "a client newer than the addresses was closed"
        finally:
            await link.close()
            await early.stop()
            await late.stop()

    asyncio.run(main())
