"""A bound on request bodies, applied before the body is read (an ASGI wrapper).

A request whose ``Content-Length`` is over its route's limit is answered 413 at once,
its body unread; a body sent without a length (chunked) is counted as it arrives and
the request is answered 413 when the count passes the limit. Streamed uploads (files
written into a task, environment imports) have no limit here: they are passed on as
they arrive, never held in memory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass(frozen=True)
class Limit:
    """Bodies of ``method`` requests to paths matching ``path`` may be ``size`` bytes
    (None: unbounded)."""

    method: str
    path: re.Pattern[str]
    size: int | None


def too_large(limit: int) -> str:
    return f"the request body is larger than the limit of {limit} bytes"


class BodyLimit:
    """Answers 413 (JSON ``detail``) to bodies over the first matching limit, else
    ``default``."""

    def __init__(self, app: ASGIApp, default: int, limits: Sequence[Limit] = ()) -> None:
        self.app, self.default, self.limits = app, default, tuple(limits)

    def limit_for(self, method: str, path: str) -> int | None:
        for rule in self.limits:
            if rule.method == method and rule.path.fullmatch(path):
                return rule.size
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["method"], scope["path"])
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _refuse(send, too_large(limit))
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, too_large(limit))
            return message

        await self.app(scope, counted, send)


async def _refuse(send: Send, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
