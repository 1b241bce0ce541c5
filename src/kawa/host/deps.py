"""FastAPI dependencies: the host's services and the caller's identity."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Header, Path, Query, Request

from kawa.host.auth import Principal
from kawa.host.errors import BadRequest, NotFound, Unavailable
from kawa.protocol.bounds import MAX_ID, NodeName, parse_id

if TYPE_CHECKING:
    from kawa.host.app import Host


def _host(request: Request) -> Host:
    return request.app.state.host  # type: ignore[no-any-return]


async def host(request: Request) -> Host:
    return _host(request)


async def user(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    """The token's owner, with the address the request came from (for the audit log).
    A token not checked lately is read from the database in a worker thread."""
    auth = _host(request).auth
    who = auth.known(authorization)
    if who is None:
        who = await asyncio.to_thread(auth.user, authorization)
    return replace(who, address=request.client.host if request.client else None)


async def runner(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    _host(request).auth.runner(authorization)


async def leading(request: Request) -> None:
    """503 unless this host leads: runners report to the leader only."""
    if not _host(request).leading:
        raise Unavailable("this host is standing by; another host leads the cluster")


HostDep = Annotated["Host", Depends(host)]
UserDep = Annotated[Principal, Depends(user)]
RunnerAuth = Depends(runner)
leader_only = Depends(leading)


def shown(text: str, limit: int = 40) -> str:
    """``text`` cut for an error message."""
    return text if len(text) <= limit else text[:limit] + "…"


def checked_task_ref(ref: str) -> str:
    """A task id or id prefix as given; 400 when it is not decimal digits, 404 when it
    is too long or too large to name a task (ids are signed 64-bit)."""
    ref = ref.strip()
    if not ref.isascii() or not ref.isdigit():
        raise BadRequest(f"bad task id {shown(ref)!r}: task ids are decimal digits")
    if parse_id(ref) is None:
        raise NotFound(f"no task with id {shown(ref)}")
    return ref


async def _task_ref(ref: Annotated[str, Path(description="a task id or unique prefix")]) -> str:
    return checked_task_ref(ref)


TaskRef = Annotated[str, Depends(_task_ref)]
"""A task id (or unique prefix) from the path, checked before any lookup."""
BatchId = Annotated[int | None, Query(ge=0, le=MAX_ID, description="a batch id")]
"""A batch id in a query: 422 unless it fits a signed 64-bit id."""
NodeNameQuery = Annotated[NodeName | None, Query()]
NodeNamePath = Annotated[NodeName, Path()]
