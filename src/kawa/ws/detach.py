"""The ``kawa.socket.detach`` ASGI extension: an application asks the server for an
accepted WebSocket connection's socket, to speak to it itself (:mod:`kawa.ws.websocket`)
or to join it to another in the kernel (:mod:`kawa.relay.splice`).

Only uvicorn's sans-I/O WebSocket protocol extended by :mod:`kawa.ws.uvicorn_detach`
offers it. That extension subclasses a uvicorn class that is not public API, so it is a
fast path taken only on the uvicorn versions it was written for (:data:`WRITTEN_FOR`,
the one pinned in pyproject.toml): :func:`server_protocol` chooses it there and
uvicorn's own ``websockets-sansio`` protocol, by its public name, on any other. Without
the extension nothing breaks: the host relays stream sessions' frames in Python and the
runner reads them through Starlette's WebSocket.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
from collections.abc import MutableMapping
from typing import Any, Final, Literal

import uvicorn

log = logging.getLogger(__name__)

DETACH = "kawa.socket.detach"
WRITTEN_FOR = frozenset({"0.54.0"})
"""uvicorn versions whose private ``WebSocketsSansIOProtocol`` the subclass in
:mod:`kawa.ws.uvicorn_detach` was written and tested against."""
PUBLIC_PROTOCOL: Final = "websockets-sansio"
"""uvicorn's own protocol (``uvicorn.Config(ws=...)``) when the subclass is not used."""


def server_protocol(
    version: str = uvicorn.__version__,
) -> type[asyncio.Protocol] | Literal["websockets-sansio"]:
    """The ``ws`` protocol for ``uvicorn.Config``: the detachable one on a uvicorn
    ``version`` it was written for, else :data:`PUBLIC_PROTOCOL`."""
    if version not in WRITTEN_FOR:
        _note_public(version)
        return PUBLIC_PROTOCOL
    from kawa.ws.uvicorn_detach import DetachableWebSocketProtocol

    return DetachableWebSocketProtocol


@functools.cache
def _note_public(version: str) -> None:
    """Say once per process why sockets are not detached."""
    written = ", ".join(sorted(WRITTEN_FOR))
    log.warning(
        "uvicorn %s is not a version Kawa's socket detach was written for (%s): "
        "stream sessions are relayed as frames in Python",
        version,
        written,
    )


async def detach_socket(scope: MutableMapping[str, Any]) -> socket.socket | None:
    """The connection's socket, if the server offers :data:`DETACH` and can hand it over."""
    extension = scope.get("extensions", {}).get(DETACH)
    if not extension:
        return None
    result: socket.socket | None = await extension["detach"]()
    return result


def offers_detach(scope: MutableMapping[str, Any]) -> bool:
    return DETACH in scope.get("extensions", {})
