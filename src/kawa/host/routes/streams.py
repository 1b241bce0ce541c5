"""/api/v1/tasks/{id}/terminal and /forward: WebSocket stream sessions, served by
:class:`~kawa.host.stream_sessions.StreamSessions`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, WebSocket

from kawa.ws.asgi import StarletteChannel

if TYPE_CHECKING:
    from kawa.host.app import Host

router = APIRouter(tags=["streams"])


@router.websocket("/tasks/{ref}/terminal")
async def terminal(ws: WebSocket, ref: str) -> None:
    """A terminal (``docker exec`` with a TTY) in the task's container."""
    host: Host = ws.app.state.host
    await host.stream_sessions.serve(StarletteChannel(ws), authorization(ws), ref, "terminal")


@router.websocket("/tasks/{ref}/forward")
async def forward(ws: WebSocket, ref: str) -> None:
    """Connections to ports of the task's container, one stream each (``?tunnel=PORT``:
    one connection carried raw)."""
    host: Host = ws.app.state.host
    tunnel = ws.query_params.get("tunnel")
    await host.stream_sessions.serve(
        StarletteChannel(ws), authorization(ws), ref, "forward", tunnel
    )


def authorization(ws: WebSocket) -> str | None:
    """The Authorization header, or a ``token`` query parameter as a bearer token (for
    clients that cannot set headers on a WebSocket)."""
    header = ws.headers.get("authorization")
    if header is None and "token" in ws.query_params:
        header = f"Bearer {ws.query_params['token']}"
    return header
