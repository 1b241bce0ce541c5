"""A tunnel: one TCP connection to a port of a task's container, carried raw through the
host and the runner (docs/streams.md, "Tunnels").

:func:`open_tunnel` returns a connected socket whose bytes, once the runner's READY has
been read, are the container port's, both ways: it can be handed to another program
(``kawa ssh`` passes it to ssh). Blocking: run it in a thread from async code.
"""

from __future__ import annotations

import socket

from websockets.exceptions import InvalidHandshake

from kawa.client.errors import KawaError, refused, unreachable
from kawa.client.streams import session_url
from kawa.protocol import streams as proto
from kawa.ws.dial import Closed, DialRefused, tunnel


class TunnelUnavailable(KawaError):
    """This path carries no tunnels (a host that relays frames, a runner that cannot):
    use a multiplexed session instead."""


def open_tunnel(
    url: str, token: str, task: str, port: int, timeout: float = 15.0
) -> socket.socket:
    """A socket joined to ``port`` in ``task``'s container; KawaError with the host's or
    the runner's reason if refused (TunnelUnavailable where only sessions work)."""
    ws_url = f"{session_url(url, task, 'forward')}?tunnel={port}"
    if not ws_url.startswith("ws://"):
        raise TunnelUnavailable("tunnels are not carried over TLS")
    try:
        return tunnel(ws_url, {"Authorization": f"Bearer {token}"}, timeout)
    except Closed as exc:
        if exc.code == proto.CLOSE_NO_TUNNEL:
            raise TunnelUnavailable(exc.reason) from None
        status = exc.code - 4000 if 4400 <= exc.code < 4600 else None
        raise KawaError(str(exc), status) from None
    except DialRefused as exc:
        raise refused("the tunnel", ws_url, exc.status) from None
    except (OSError, InvalidHandshake, TimeoutError) as exc:
        raise unreachable(ws_url, exc) from None
