"""Running the host and the runner as servers (``kawa host``, ``kawa runner``, ``kawa up``)."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from kawa.ws.detach import server_protocol


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


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol, but an idle connection over TLS is dropped, not closed.

    Closing a TLS connection sends close_notify and waits (30 s) for the client's, which
    an idle keep-alive connection in a client's pool never reads: a server stopping, or
    timing out such a connection, would wait that long. Idle, nothing is lost.
    """

    def _drop_if_idle_tls(self) -> bool:
        idle = self.cycle is None or self.cycle.response_complete
        if idle and self.transport.get_extra_info("sslcontext") is not None:
            self.transport.abort()
            return True
        return False

    def shutdown(self) -> None:
        if not self._drop_if_idle_tls():
            super().shutdown()

    def timeout_keep_alive_handler(self) -> None:
        if not self.transport.is_closing() and not self._drop_if_idle_tls():
            super().timeout_keep_alive_handler()


SHUTDOWN_GRACE = 10
"""Seconds a stopping server waits for requests still running (a followed log, an event
stream, a terminal) before it cancels them: a stop always ends the process. A runner's
tasks keep running in their containers, and its next start adopts them."""


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
        http=HttpProtocol,
        ws=server_protocol(),
        ws_per_message_deflate=False,  # stream sessions carry binary frames as they are
        ssl_certfile=None if tls_cert is None else str(tls_cert),
        ssl_keyfile=None if tls_key is None else str(tls_key),
        timeout_graceful_shutdown=SHUTDOWN_GRACE,
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
