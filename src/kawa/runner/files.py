"""The runner's files API: a task container's filesystem through Docker's archive API
(``get_archive``/``put_archive``) and plain ``docker exec`` of coreutils (``find``,
``mkdir``, ``mv``, ``rm``). Nothing is installed in the container. The host checks the
user and the task; this side checks the path again and the task's state on this node.
"""

from __future__ import annotations

import asyncio
import functools
import os
import tarfile
import tempfile
import time
from collections.abc import Iterator
from typing import IO, Any

import docker
import docker.errors
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse

from kawa.protocol.files import (
    FileEntry,
    FileList,
    FileType,
    FileWritten,
    MkdirRequest,
    MoveRequest,
    PathError,
    check_path,
)

router = APIRouter(tags=["files"])
_TYPES = {"f": FileType.FILE, "d": FileType.DIR, "l": FileType.LINK}
_FIND_FORMAT = "%p\\0%y\\0%s\\0%m\\0%T@\\0%l\\0"
_CHUNK = 256 * 1024


@functools.cache
def _fallback_docker() -> docker.DockerClient:
    return docker.from_env(timeout=120)


def _container(request: Request, task_id: str, read: bool = False) -> Any:
    """The task's container on this node; 409 (naming the state) or 404 if none."""
    service = request.app.state.service
    entry = service.journal.get(task_id)
    if entry is None or entry.state == "ended":
        raise HTTPException(409, f"task {task_id} is not running on {service.config.name}")
    if entry.state == "paused" and not read:
        raise HTTPException(409, f"task {task_id} is paused: resume it first")
    if entry.order.native or not entry.container:
        raise HTTPException(409, f"task {task_id} runs natively: the files API needs a container")
    client = getattr(service.executor, "docker", None) or _fallback_docker()
    try:
        return client.containers.get(entry.container)
    except docker.errors.NotFound:
        raise HTTPException(409, f"task {task_id} has no container any more") from None


def _path(path: str) -> str:
    try:
        return check_path(path)
    except PathError as exc:
        raise HTTPException(400, str(exc)) from None


def _docker_error(exc: docker.errors.APIError, path: str) -> HTTPException:
    if isinstance(exc, docker.errors.NotFound):
        return HTTPException(404, f"no such file or directory: {path}")
    if exc.status_code == 409:
        return HTTPException(409, str(exc.explanation or exc))
    return HTTPException(400, f"{path}: {exc.explanation or exc}")


def _exec(container: Any, argv: list[str], path: str) -> bytes:
    """Run ``argv`` in the container; its stdout, or an HTTPException with its stderr."""
    try:
        code, (out, err) = container.exec_run(argv, demux=True)
    except docker.errors.APIError as exc:
        raise _docker_error(exc, path) from None
    if code != 0:
        message = (err or b"").decode(errors="replace").strip().splitlines()
        text = message[-1] if message else f"{argv[0]} failed with exit code {code}"
        text = text.split(": ", 1)[-1] if text.startswith(argv[0] + ":") else text
        status = 404 if "No such file or directory" in text else 400
        raise HTTPException(status, f"{path}: {text}")
    return bytes(out or b"")


def _entries(raw: bytes) -> list[FileEntry]:
    fields = raw.split(b"\0")
    out = []
    for i in range(0, len(fields) - 5, 6):
        p, kind, size, mode, mtime, link = (f.decode(errors="replace") for f in fields[i : i + 6])
        out.append(
            FileEntry(
                name=os.path.basename(p) or "/",
                path=p,
                type=_TYPES.get(kind, FileType.OTHER),
                size=int(size),
                mode=int(mode, 8),
                mtime=float(mtime),
                target=link or None,
            )
        )
    return out


# find exits 0 only after printing the entry, so a success with no output means Docker
# dropped the exec's output (it does, rarely, for processes that end at once): ask again.
_STAT_ATTEMPTS = 3


def _stat(container: Any, path: str) -> FileEntry:
    for _ in range(_STAT_ATTEMPTS):
        raw = _exec(container, ["find", path, "-maxdepth", "0", "-printf", _FIND_FORMAT], path)
        found = _entries(raw)
        if found:
            return found[0]
    raise HTTPException(404, f"no such file or directory: {path}")


def _list(container: Any, path: str) -> FileList:
    me = _stat(container, path)
    if me.type is FileType.LINK:  # list what a link to a directory points at
        path = path.rstrip("/") + "/"
        me = _stat(container, path)
    if me.type is not FileType.DIR:
        raise HTTPException(400, f"{path} is not a directory")
    argv = ["find", path, "-mindepth", "1", "-maxdepth", "1", "-printf", _FIND_FORMAT]
    entries = _entries(_exec(container, argv, path))
    entries.sort(key=lambda e: (e.type is not FileType.DIR, e.name))
    return FileList(path=path.rstrip("/") or "/", entries=entries)


@router.get("/tasks/{task_id}/files")
async def list_dir(request: Request, task_id: str, path: str) -> FileList:
    clean = _path(path)
    container = _container(request, task_id)
    return await asyncio.to_thread(_list, container, clean)


@router.get("/tasks/{task_id}/files/stat")
async def stat(request: Request, task_id: str, path: str) -> FileEntry:
    clean = _path(path)
    container = _container(request, task_id)
    return await asyncio.to_thread(_stat, container, clean)


class _ChunkReader:
    """Docker's archive chunks as a file object for ``tarfile``'s stream mode."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks, self._buffer = chunks, b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buffer) < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if n < 0:
            n = len(self._buffer)
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data


_DIR_BIT, _LINK_BIT = 1 << 31, 1 << 27


def _open_file(container: Any, path: str) -> tuple[Iterator[bytes], int]:
    """The content of a regular file (following links), as chunks and its size."""
    for _ in range(8):  # links to links
        try:
            chunks, info = container.get_archive(path, chunk_size=_CHUNK)
        except docker.errors.APIError as exc:
            raise _docker_error(exc, path) from None
        mode = int(info.get("mode", 0))
        if mode & _LINK_BIT and info.get("linkTarget"):
            chunks.close()
            target = str(info["linkTarget"])
            if not target.startswith("/"):
                target = os.path.join(os.path.dirname(path), target)
            path = _path(os.path.normpath(target))
            continue
        if mode & _DIR_BIT:
            chunks.close()
            raise HTTPException(400, f"{path} is a directory: list it, or get its files")
        return _members(chunks, path), int(info.get("size", 0))
    raise HTTPException(400, f"{path}: too many levels of symbolic links")


def _members(chunks: Iterator[bytes], path: str) -> Iterator[bytes]:
    try:
        with tarfile.open(fileobj=_ChunkReader(chunks), mode="r|") as tar:  # type: ignore[call-overload]
            for member in tar:
                f = tar.extractfile(member)
                if f is None:
                    return
                while block := f.read(_CHUNK):
                    yield block
                return
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


@router.get("/tasks/{task_id}/files/content")
async def read_file(request: Request, task_id: str, path: str) -> StreamingResponse:
    clean = _path(path)
    container = _container(request, task_id, read=True)  # the archive API reads paused ones
    body, size = await asyncio.to_thread(_open_file, container, clean)
    headers = {"Content-Length": str(size)}
    return StreamingResponse(body, media_type="application/octet-stream", headers=headers)


def _write(container: Any, path: str, body: IO[bytes], size: int, parents: bool) -> None:
    directory, name = os.path.split(path)
    if not name:
        raise HTTPException(400, "give the file's path, not a directory")
    if parents:
        _exec(container, ["mkdir", "-p", directory], directory)
    mode = 0o644
    try:
        existing = _stat(container, path)
    except HTTPException as exc:
        if exc.status_code != 404:
            raise
    else:
        if existing.type is FileType.DIR:
            raise HTTPException(400, f"{path} is a directory")
        mode = existing.mode
    with tempfile.TemporaryFile() as archive:
        with tarfile.open(fileobj=archive, mode="w") as tar:
            info = tarfile.TarInfo(name)
            info.size, info.mode = size, mode
            info.mtime = int(time.time())
            tar.addfile(info, body)
        archive.seek(0)
        try:
            container.put_archive(directory or "/", archive)
        except docker.errors.NotFound:
            raise HTTPException(
                404, f"no such directory: {directory} (create it, or ask for parents)"
            ) from None
        except docker.errors.APIError as exc:
            raise _docker_error(exc, path) from None


@router.put("/tasks/{task_id}/files/content")
async def write_file(
    request: Request, task_id: str, path: str, parents: bool = False
) -> FileWritten:
    clean = _path(path)
    container = _container(request, task_id)
    with tempfile.TemporaryFile() as body:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            await asyncio.to_thread(body.write, chunk)
        body.seek(0)
        await asyncio.to_thread(_write, container, clean, body, size, parents)
    return FileWritten(path=clean, size=size)


@router.delete("/tasks/{task_id}/files")
async def delete(request: Request, task_id: str, path: str, recursive: bool = False) -> FileEntry:
    clean = _path(path)
    if clean == "/":
        raise HTTPException(400, "refusing to delete /")
    container = _container(request, task_id)

    def remove() -> FileEntry:
        me = _stat(container, clean)
        if me.type is FileType.DIR:
            argv = ["rm", "-rf", "--", clean] if recursive else ["rmdir", "--", clean]
        else:
            argv = ["rm", "-f", "--", clean]
        _exec(container, argv, clean)
        return me

    return await asyncio.to_thread(remove)


@router.post("/tasks/{task_id}/files/mkdir")
async def mkdir(request: Request, task_id: str, body: MkdirRequest) -> FileEntry:
    clean = _path(body.path)
    container = _container(request, task_id)

    def make() -> FileEntry:
        _exec(container, ["mkdir", *(["-p"] if body.parents else []), "--", clean], clean)
        return _stat(container, clean)

    return await asyncio.to_thread(make)


@router.post("/tasks/{task_id}/files/move")
async def move(request: Request, task_id: str, body: MoveRequest) -> FileEntry:
    source, destination = _path(body.source), _path(body.destination)
    if source == "/":
        raise HTTPException(400, "refusing to move /")
    container = _container(request, task_id)

    def rename() -> FileEntry:
        _exec(container, ["mv", "-T", "--", source, destination], source)
        return _stat(container, destination)

    return await asyncio.to_thread(rename)
