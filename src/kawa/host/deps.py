"""FastAPI dependencies: the host's services and the caller's identity."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Header, Request

from kawa.host.auth import Principal

if TYPE_CHECKING:
    from kawa.host.app import Host


def host(request: Request) -> Host:
    return request.app.state.host  # type: ignore[no-any-return]


def user(request: Request, authorization: Annotated[str | None, Header()] = None) -> Principal:
    return host(request).auth.user(authorization)


def runner(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    host(request).auth.runner(authorization)


HostDep = Annotated["Host", Depends(host)]
UserDep = Annotated[Principal, Depends(user)]
RunnerAuth = Depends(runner)
