"""/api/v1/tasks. Routes that only read or write the database are plain functions:
FastAPI runs them in its threadpool, off the event loop."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse
from pydantic import Field

from kawa.host.deps import BatchId, HostDep, NodeNameQuery, TaskRef, UserDep
from kawa.host.errors import error_responses
from kawa.host.routes.responses import BYTES
from kawa.host.task_pages import TaskFilter
from kawa.protocol.bounds import MAX_ID, MAX_SHORT, NoNul, QueryText
from kawa.protocol.task_queries import DryRunResponse, TaskCounts, WaitFor
from kawa.protocol.tasks import SubmitResponse, TaskAction, TaskSpec, TaskView

router = APIRouter(prefix="/tasks", tags=["tasks"])
Word = Annotated[str, Query(max_length=MAX_SHORT, pattern=r"^[a-z_]*$")]
UserName = Annotated[str, Field(min_length=1, max_length=64), NoNul]


@router.post("", status_code=201, responses=error_responses(429))
async def submit(spec: TaskSpec, host: HostDep, who: UserDep) -> SubmitResponse:
    """Store the spec's tasks, all of them in one transaction (a single task's shared with
    the single ones that arrive meanwhile, each stored or refused on its own). Past
    ``host.submit_limit`` submissions in flight (counted here on the loop, waiting ones
    included) the answer is 429 with ``Retry-After``: nothing was stored, send it again."""
    with host.submissions.admit():
        return await host.tasks.submit_grouped(spec, who)


@router.post("/dry-run")
def dry_run(spec: TaskSpec, host: HostDep, who: UserDep) -> DryRunResponse:
    """What submitting ``spec`` now would do, task by task: start on a node, or wait and
    why. Checked as a submission is (the same errors); nothing is stored."""
    return host.dry_run.run(spec, who)


@router.get("/counts")
def counts(host: HostDep, who: UserDep) -> TaskCounts:
    """How many tasks the caller may see (admins: all), by state."""
    return host.tasks.counts(who)


@router.get("", response_model=list[TaskView])
async def list_tasks(
    request: Request,
    host: HostDep,
    who: UserDep,
    state: Annotated[list[str], Query(max_length=32)] = [],  # noqa: B006
    node: NodeNameQuery = None,
    batch: BatchId = None,
    kind: Word | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
    owner: Annotated[UserName | None, Query(description="only this user's tasks")] = None,
    q: Annotated[
        QueryText | None, Query(description="name or command contains this (any case)")
    ] = None,
    before: Annotated[
        int | None,
        Query(ge=0, le=MAX_ID, description="only tasks older than this task id (paging)"),
    ] = None,
) -> Response:
    """Tasks the caller may see (admins: all), newest first; the next page is
    ``before=<the last id>``."""
    batch_text = None if batch is None else str(batch)
    wanted = TaskFilter(state, node, batch_text, kind, limit, owner, q, before)
    wanted.check()
    answer = host.tasks.known_page(who, wanted)
    if answer is None:  # read in a worker thread, off the loop
        answer = await run_in_threadpool(host.tasks.page, who, wanted)
    return answer.response(request.headers.get("accept-encoding"))


@router.get("/{ref}")
def get_task(ref: TaskRef, host: HostDep, who: UserDep) -> TaskView:
    return host.tasks.get(ref, who)


@router.get("/{ref}/wait")
async def wait(
    ref: TaskRef,
    host: HostDep,
    who: UserDep,
    until: WaitFor = WaitFor.DONE,
    timeout: Annotated[float, Query(ge=0, le=300)] = 30,
) -> TaskView:
    """The task once it has ``started`` (or ended without starting) or is ``done``, or as
    it is after ``timeout`` seconds: a long poll for clients without the event stream."""
    return await host.waits.wait(ref, who, until, timeout)


@router.post("/{ref}/remove")
async def remove(ref: TaskRef, host: HostDep, who: UserDep, force: bool = False) -> TaskView:
    """Remove a VPS's container and snapshots; ``force`` stops a running one first."""
    return await host.tasks.remove(ref, who, force)


@router.post("/{ref}/retry", status_code=201)
def retry(ref: TaskRef, host: HostDep, who: UserDep) -> SubmitResponse:
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
    await asyncio.to_thread(host.tasks.get, ref, who)  # 404 unless the caller may see it
    body = await host.logs.stream(ref, stream, follow, offset)
    return StreamingResponse(body, media_type="application/octet-stream")
