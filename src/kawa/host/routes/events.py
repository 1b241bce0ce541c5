"""/api/v1/events: a WebSocket of task and node changes (a caller's own tasks only,
every task for admins). A refused token gets HTTP 401 on the handshake, a malformed
``after`` HTTP 422. With ``?after=SEQ`` the kept events after SEQ come first, or one
``reset`` event when they are not all kept (kawa.protocol.events)."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

from kawa.host.auth import Principal
from kawa.host.errors import BadRequest, ServiceError, Unauthorized
from kawa.host.events import Subscription
from kawa.host.task_service import visible
from kawa.protocol.bounds import parse_id
from kawa.protocol.events import Event

router = APIRouter(tags=["events"])


@router.websocket("/events")
async def events(ws: WebSocket) -> None:
    host = ws.app.state.host
    header = ws.headers.get("authorization")
    if header is None and "token" in ws.query_params:
        header = f"Bearer {ws.query_params['token']}"
    try:
        who = host.auth.known(header) or await asyncio.to_thread(host.auth.user, header)
        after = _after(ws.query_params.get("after"))
    except (Unauthorized, BadRequest) as exc:
        await _refuse(ws, exc)
        return
    await ws.accept()
    with host.bus.subscribe(after) as sub:
        await ws.send_text(Event(seq=host.bus.current, type="hello").model_dump_json())
        sender = asyncio.create_task(_send(ws, sub, who))
        receiver = asyncio.create_task(_drain(ws))
        done, pending = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.exception()  # a send to a vanished client; nothing more to do
        for task in pending:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                await task
    if sender in done and receiver not in done:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await ws.close(code=1013, reason="subscriber fell behind; reconnect")


def _after(text: str | None) -> int | None:
    if text is None:
        return None
    found = parse_id(text)
    if found is None:
        raise BadRequest(f"bad after={text[:40]!r}: a sequence number (decimal digits) is needed")
    return found


async def _refuse(ws: WebSocket, exc: ServiceError) -> None:
    """An HTTP answer to the handshake where the server can send one, else a close code
    of 4000 + the status."""
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        status = 422 if isinstance(exc, BadRequest) else exc.status
        await ws.send_denial_response(JSONResponse({"detail": exc.detail}, status))
    else:
        await ws.close(code=4422 if isinstance(exc, BadRequest) else 4401, reason=exc.detail)


async def _send(ws: WebSocket, sub: Subscription, who: Principal) -> None:
    async for event in sub:
        if event.task is not None and not visible(event.task.owner, who):
            continue  # others' tasks are hidden here as in every task listing
        await ws.send_text(event.model_dump_json())


async def _drain(ws: WebSocket) -> None:
    """Return when the client goes away (clients send nothing we act on)."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await ws.receive_text()
