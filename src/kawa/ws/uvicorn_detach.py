"""uvicorn's WebSocket protocol with one addition: an accepted connection's socket can
be handed to the application (the ``kawa.socket.detach`` ASGI extension,
:mod:`kawa.ws.detach`).

It subclasses uvicorn's ``WebSocketsSansIOProtocol``, which is not public API: a fast
path, used only on the uvicorn versions it was written for
(:data:`kawa.ws.detach.WRITTEN_FOR`). On any other, :func:`kawa.ws.detach.server_protocol`
falls back to uvicorn's own protocol by its public name, and this module is not imported.

The host's stream sessions use it to pass frames between the user and the runner in the
kernel (:mod:`kawa.relay.splice`) instead of parsing every frame in Python. The
extension appears in ``scope["extensions"]`` as ``{"detach": coroutine function}``;
awaiting it returns the connection's socket (a duplicate of uvicorn's descriptor, which
uvicorn then drops) or ``None`` when the connection cannot be handed over: not yet
accepted, closing, holding bytes the application has not read, or with an extension
such as compression negotiated (Kawa's servers offer none). A connection over TLS is
never offered: its socket carries encrypted records only its TLS layer can read. From
then on the application owns the socket and uvicorn writes nothing more to it (no close
frame, no keepalive pings).
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from kawa.ws.detach import DETACH

_LOST_TIMEOUT = 5.0


class DetachableWebSocketProtocol(WebSocketsSansIOProtocol):
    """``WebSocketsSansIOProtocol`` plus the :data:`DETACH` extension."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lost = asyncio.Event()

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None and self.transport.get_extra_info("sslcontext") is None:
            scope["extensions"][DETACH] = {"detach": self._detach}

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._lost.set()

    def _pending(self) -> bool:
        """Whether bytes were received that the application has not seen."""
        reader = getattr(self.conn, "reader", None)
        unparsed = len(getattr(reader, "buffer", b""))
        return bool(unparsed or self.frames or not self.queue.empty())

    async def _detach(self) -> socket.socket | None:
        transport = self.transport
        if (
            not self.handshake_complete
            or self.close_sent
            or self.disconnected
            or transport.is_closing()
            or transport.get_write_buffer_size()
            or self._pending()
            or self.conn.extensions  # e.g. permessage-deflate: frames Kawa cannot read
        ):
            return None
        raw = transport.get_extra_info("socket")
        if raw is None:
            return None
        fd = os.dup(raw.fileno())
        self.stop_keepalive()
        self.close_sent = True  # uvicorn sends nothing more on this connection
        transport.pause_reading()
        transport.abort()  # closes uvicorn's descriptor; ours keeps the connection
        try:
            await asyncio.wait_for(self._lost.wait(), _LOST_TIMEOUT)
        except TimeoutError:
            os.close(fd)
            return None
        while not self.queue.empty():  # the disconnect uvicorn queued for the app
            self.queue.get_nowait()
        return socket.socket(fileno=fd)
