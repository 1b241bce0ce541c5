"""Running the host and the runner as servers (``kawa host``, ``kawa runner``, ``kawa up``)."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import uvicorn

from kawa.relay.uvicorn_ws import DetachableWebSocketProtocol


def run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop when it is installed (it is a dependency), else asyncio.

    The servers share one interpreter with threads blocked on Docker; a shorter GIL
    switch interval keeps each hop of a task's path from waiting up to 5 ms.
    """
    sys.setswitchinterval(0.001)
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


def server(
    app: Any,
    bind: str,
    port: int,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> uvicorn.Server:
    """A uvicorn server for ``app``; https and wss when given a certificate and its key."""
    config = uvicorn.Config(
        app,
        host=bind,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        ws_max_size=16 * 1024 * 1024,
        ws=DetachableWebSocketProtocol,
        ws_per_message_deflate=False,  # stream sessions carry binary frames as they are
        ssl_certfile=None if tls_cert is None else str(tls_cert),
        ssl_keyfile=None if tls_key is None else str(tls_key),
    )
    return uvicorn.Server(config)


async def serve_all(*servers: uvicorn.Server) -> None:
    """Serve until one server stops (Ctrl-C stops them all)."""
    tasks = [asyncio.create_task(s.serve()) for s in servers]
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for s in servers:
        s.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)
    for t in done:
        if t.exception() is not None:
            raise t.exception()  # type: ignore[misc]
