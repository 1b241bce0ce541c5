"""FastAPI dependencies: the host's services and the caller's identity."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Header, Request

from kawa.host.auth import Principal

if TYPE_CHECKING:
    from kawa.host.app import Host


def _host(request: Request) -> Host:
    return request.app.state.host  # type: ignore[no-any-return]


async def host(request: Request) -> Host:
    return _host(request)


async def user(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    """The token's owner, with the address the request came from (for the audit log)."""
    who = _host(request).auth.user(authorization)
    return replace(who, address=request.client.host if request.client else None)


async def runner(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    _host(request).auth.runner(authorization)


HostDep = Annotated["Host", Depends(host)]
UserDep = Annotated[Principal, Depends(user)]
RunnerAuth = Depends(runner)
