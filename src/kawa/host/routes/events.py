"""/api/v1/events: a WebSocket of task and node changes."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from kawa.host.errors import Unauthorized
from kawa.protocol.events import Event

router = APIRouter(tags=["events"])


@router.websocket("/events")
async def events(ws: WebSocket) -> None:
    host = ws.app.state.host
    header = ws.headers.get("authorization")
    if header is None and "token" in ws.query_params:
        header = f"Bearer {ws.query_params['token']}"
    try:
        host.auth.user(header)
    except Unauthorized as exc:
        await ws.close(code=4401, reason=exc.detail)
        return
    await ws.accept()
    with host.bus.subscribe() as sub:
        await ws.send_text(Event(seq=0, type="hello").model_dump_json())
        try:
            async for event in sub:
                await ws.send_text(event.model_dump_json())
        except WebSocketDisconnect:
            return
    await ws.close(code=1013, reason="subscriber fell behind; reconnect")
