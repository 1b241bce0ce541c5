"""/api/v1/tasks/{id}/files: files inside a task's container, confined to it.

Thin: check the caller (ownership like task actions: others' tasks are "not found", the
viewer role reads but does not write), the path and the task's state, then pass the
request on to the task's runner (kawa.runner.files) and its answer back, streaming.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any

import httpx
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from kawa.core.task_states import TaskState
from kawa.host.auth import Principal
from kawa.host.deps import HostDep, TaskRef, UserDep
from kawa.host.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    ServiceError,
    Unavailable,
    error_responses,
)
from kawa.host.routes.responses import BYTES
from kawa.host.stream_sessions import not_running
from kawa.protocol.bounds import MAX_PATH
from kawa.protocol.files import (
    FileEntry,
    FileList,
    FileWritten,
    MkdirRequest,
    MoveRequest,
    PathError,
    check_path,
)
from kawa.store.models import Node

if TYPE_CHECKING:
    from kawa.host.app import Host

router = APIRouter(tags=["files"], responses=error_responses(503))
FilePath = Annotated[
    str, Query(max_length=MAX_PATH, description="an absolute path in the container")
]
_NO_LIMIT = httpx.Timeout(None, connect=5.0)


class _Passed(ServiceError):
    """The runner's refusal, passed on with its status."""

    def __init__(self, detail: str, status: int) -> None:
        super().__init__(detail)
        self.status = status


def _checked(path: str) -> str:
    try:
        return check_path(path)
    except PathError as exc:
        raise BadRequest(str(exc)) from None


def _target(host: Host, ref: TaskRef, who: Principal, write: bool) -> str:
    """``{runner}/tasks/{id}/files`` for a task the caller may read (or write)."""
    view = host.tasks.get(ref, who)  # "not found" unless the caller may see it
    if write and who.role == "viewer":
        raise Forbidden("the viewer role cannot change files in tasks")
    readable = view.state is TaskState.RUNNING or (not write and view.state is TaskState.PAUSED)
    if not readable:
        raise Conflict(not_running(view))
    with host.ledger.sessions() as s:
        node = s.get(Node, view.node) if view.node else None
        if node is None:
            raise Conflict(f"task {view.id} has no node")
        return f"{node.url}/tasks/{view.id}/files"


def _http(host: Host) -> httpx.AsyncClient:
    """The host's one client towards runners (cluster secret, pooled connections)."""
    return host.link.http


async def _call(host: Host, method: str, url: str, **kwargs: Any) -> Any:
    try:
        response = await _http(host).request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise Unavailable(f"the task's runner is unreachable: {exc!r}") from None
    _raise_for(response)
    return response.json()


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        detail = str(response.json().get("detail", response.text))
    except ValueError:
        detail = response.text or f"HTTP {response.status_code}"
    raise _Passed(detail, response.status_code)


@router.get("/tasks/{ref}/files")
async def list_dir(ref: TaskRef, path: FilePath, host: HostDep, who: UserDep) -> FileList:
    """The entries of a directory: name, type, size, mode, mtime."""
    url = _target(host, ref, who, write=False)
    data = await _call(host, "GET", url, params={"path": _checked(path)})
    return FileList.model_validate(data)


@router.get("/tasks/{ref}/files/stat")
async def stat(ref: TaskRef, path: FilePath, host: HostDep, who: UserDep) -> FileEntry:
    url = _target(host, ref, who, write=False)
    data = await _call(host, "GET", f"{url}/stat", params={"path": _checked(path)})
    return FileEntry.model_validate(data)


@router.get("/tasks/{ref}/files/content", response_class=Response, responses=BYTES)
async def read_file(ref: TaskRef, path: FilePath, host: HostDep, who: UserDep) -> Response:
    """A file's bytes, streamed (works for paused tasks too)."""
    url = _target(host, ref, who, write=False)
    client = _http(host)
    request = client.build_request(
        "GET", f"{url}/content", params={"path": _checked(path)}, timeout=_NO_LIMIT
    )
    try:
        response = await client.send(request, stream=True)
    except httpx.HTTPError as exc:
        raise Unavailable(f"the task's runner is unreachable: {exc!r}") from None
    if response.status_code >= 400:
        await response.aread()
        await response.aclose()
        _raise_for(response)

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_raw():
                yield chunk
        finally:
            await response.aclose()

    headers = {}
    if "content-length" in response.headers:
        headers["Content-Length"] = response.headers["content-length"]
    return StreamingResponse(body(), media_type="application/octet-stream", headers=headers)


@router.put("/tasks/{ref}/files/content")
async def write_file(
    ref: TaskRef,
    path: FilePath,
    request: Request,
    host: HostDep,
    who: UserDep,
    parents: bool = False,
) -> FileWritten:
    """Write a file from the request body, streamed (replaces an existing file)."""
    url = _target(host, ref, who, write=True)
    params = {"path": _checked(path), "parents": str(parents).lower()}
    data = await _call(
        host, "PUT", f"{url}/content", params=params, content=request.stream(), timeout=_NO_LIMIT
    )
    return FileWritten.model_validate(data)


@router.delete("/tasks/{ref}/files")
async def delete(
    ref: TaskRef, path: FilePath, host: HostDep, who: UserDep, recursive: bool = False
) -> FileEntry:
    """Delete a file, an empty directory, or (``recursive``) a directory tree."""
    url = _target(host, ref, who, write=True)
    params = {"path": _checked(path), "recursive": str(recursive).lower()}
    return FileEntry.model_validate(await _call(host, "DELETE", url, params=params))


@router.post("/tasks/{ref}/files/mkdir")
async def mkdir(ref: TaskRef, body: MkdirRequest, host: HostDep, who: UserDep) -> FileEntry:
    url = _target(host, ref, who, write=True)
    payload = MkdirRequest(path=_checked(body.path), parents=body.parents)
    data = await _call(host, "POST", f"{url}/mkdir", json=payload.model_dump())
    return FileEntry.model_validate(data)


@router.post("/tasks/{ref}/files/move")
async def move(ref: TaskRef, body: MoveRequest, host: HostDep, who: UserDep) -> FileEntry:
    """Rename (move) a file or directory."""
    url = _target(host, ref, who, write=True)
    payload = MoveRequest(source=_checked(body.source), destination=_checked(body.destination))
    data = await _call(host, "POST", f"{url}/move", json=payload.model_dump())
    return FileEntry.model_validate(data)
