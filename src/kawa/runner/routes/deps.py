"""What the runner's routes depend on: the cluster secret, the service, the executor."""

# No `from __future__ import annotations`: FastAPI must see the Annotated aliases.
import asyncio
import hmac
from typing import Annotated

from fastapi import Depends, Header, HTTPException
from starlette.requests import HTTPConnection

from kawa.runner.executor import ContainerExecutor
from kawa.runner.service import RunnerService

STARTUP_WAIT_S = 30.0
"""How long an order waits for the runner to finish registering and re-adopting."""


def _service(request: HTTPConnection) -> RunnerService:
    """The service of this app (HTTP and WebSocket routes alike)."""
    return request.app.state.service  # type: ignore[no-any-return]


async def service(request: HTTPConnection) -> RunnerService:
    return _service(request)


async def authenticated(
    request: HTTPConnection, authorization: Annotated[str | None, Header()] = None
) -> None:
    """Every runner route needs the cluster secret as a bearer token."""
    secret = (_service(request).config.cluster_secret or "").encode()
    token = (authorization or "").removeprefix("Bearer ").strip().encode()
    if not token or not secret or not hmac.compare_digest(token, secret):
        raise HTTPException(401, "invalid cluster secret")


async def executor(request: HTTPConnection) -> ContainerExecutor:
    """The executor; an order that arrives while the runner registers and re-adopts
    its tasks waits for it (503 after ``STARTUP_WAIT_S``)."""
    runner = _service(request)
    try:
        await asyncio.wait_for(runner.ready.wait(), STARTUP_WAIT_S)
    except TimeoutError:
        raise HTTPException(503, "runner is still starting up") from None
    assert runner.executor is not None
    return runner.executor


ServiceDep = Annotated[RunnerService, Depends(service)]
ExecutorDep = Annotated[ContainerExecutor, Depends(executor)]
