"""/api/v1/tasks"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from kawa.host.deps import HostDep, UserDep
from kawa.protocol.tasks import SubmitResponse, TaskAction, TaskSpec, TaskView

router = APIRouter(prefix="/tasks", tags=["tasks"])


@router.post("", status_code=201)
async def submit(spec: TaskSpec, host: HostDep, who: UserDep) -> SubmitResponse:
    return host.tasks.submit(spec, who)


@router.get("")
async def list_tasks(
    host: HostDep,
    who: UserDep,
    state: Annotated[list[str], Query()] = [],  # noqa: B006
    node: str | None = None,
    batch: str | None = None,
    kind: str | None = None,
    limit: int = 200,
) -> list[TaskView]:
    return host.tasks.list(who, state, node, batch, kind, limit)


@router.get("/{ref}")
async def get_task(ref: str, host: HostDep, who: UserDep) -> TaskView:
    return host.tasks.get(ref, who)


@router.post("/{ref}/remove")
async def remove(ref: str, host: HostDep, who: UserDep, force: bool = False) -> TaskView:
    """Remove a VPS's container and snapshots; ``force`` stops a running one first."""
    return await host.tasks.remove(ref, who, force)


@router.post("/{ref}/{action}")
async def act(ref: str, action: TaskAction, host: HostDep, who: UserDep) -> TaskView:
    return await host.tasks.act(ref, action, who)


@router.get("/{ref}/logs")
async def logs(
    ref: str, host: HostDep, who: UserDep, stream: str = "stdout", follow: bool = False
) -> StreamingResponse:
    host.tasks.get(ref, who)  # 404 unless the caller may see it
    body = await host.logs.stream(ref, stream, follow)
    return StreamingResponse(body, media_type="application/octet-stream")
