"""/api/v1/tasks"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from kawa.host.deps import BatchId, HostDep, NodeNameQuery, TaskRef, UserDep
from kawa.host.routes.responses import BYTES
from kawa.protocol.bounds import MAX_SHORT
from kawa.protocol.tasks import SubmitResponse, TaskAction, TaskSpec, TaskView

router = APIRouter(prefix="/tasks", tags=["tasks"])
Word = Annotated[str, Query(max_length=MAX_SHORT, pattern=r"^[a-z_]*$")]


@router.post("", status_code=201)
async def submit(spec: TaskSpec, host: HostDep, who: UserDep) -> SubmitResponse:
    return host.tasks.submit(spec, who)


@router.get("")
async def list_tasks(
    host: HostDep,
    who: UserDep,
    state: Annotated[list[str], Query(max_length=32)] = [],  # noqa: B006
    node: NodeNameQuery = None,
    batch: BatchId = None,
    kind: Word | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
) -> list[TaskView]:
    batch_text = None if batch is None else str(batch)
    return host.tasks.list(who, state, node, batch_text, kind, limit)


@router.get("/{ref}")
async def get_task(ref: TaskRef, host: HostDep, who: UserDep) -> TaskView:
    return host.tasks.get(ref, who)


@router.post("/{ref}/remove")
async def remove(ref: TaskRef, host: HostDep, who: UserDep, force: bool = False) -> TaskView:
    """Remove a VPS's container and snapshots; ``force`` stops a running one first."""
    return await host.tasks.remove(ref, who, force)


@router.post("/{ref}/retry", status_code=201)
async def retry(ref: TaskRef, host: HostDep, who: UserDep) -> SubmitResponse:
    """Submit the task's spec again as a new task (its history names the original)."""
    return host.tasks.retry(ref, who)


@router.post("/{ref}/{action}")
async def act(ref: TaskRef, action: TaskAction, host: HostDep, who: UserDep) -> TaskView:
    return await host.tasks.act(ref, action, who)


@router.get("/{ref}/logs", response_class=StreamingResponse, responses=BYTES)
async def logs(
    ref: TaskRef,
    host: HostDep,
    who: UserDep,
    stream: Word = "stdout",
    follow: bool = False,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> StreamingResponse:
    """The task's output from byte ``offset`` on (a client that lost its connection
    resumes where it stopped); ``follow``: until the task ends."""
    host.tasks.get(ref, who)  # 404 unless the caller may see it
    body = await host.logs.stream(ref, stream, follow, offset)
    return StreamingResponse(body, media_type="application/octet-stream")
