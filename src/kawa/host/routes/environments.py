"""/api/v1/environments: workspaces, packaging, tarballs, import/export, scripted shell
and the interactive terminal (a WebSocket session served here, on the host's Docker).

Reading is open to every role; export needs the user role; everything that changes an
environment is admin work. Long operations answer NDJSON (one JSON object a line)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, WebSocket
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel

from kawa.docker_exec.terminal import serve_terminal
from kawa.host.auth import Principal
from kawa.host.deps import HostDep, UserDep
from kawa.host.environments import Work, valid_name
from kawa.host.errors import Conflict, Forbidden, ServiceError, error_responses
from kawa.host.routes.responses import NDJSON, TARBALL
from kawa.mux.session import Mux
from kawa.mux.stream import MuxStream, SessionClosed
from kawa.protocol import streams as proto
from kawa.protocol.bounds import QueryText, Short, Url
from kawa.protocol.environments import (
    DIGEST_HEADER,
    VERSION_HEADER,
    EnvironmentVersionView,
    ExecFrame,
    Progress,
    WorkspaceCreate,
    WorkspaceView,
)
from kawa.store.models import EnvironmentVersion
from kawa.ws.asgi import StarletteChannel

log = logging.getLogger(__name__)
router = APIRouter(prefix="/environments", tags=["environments"], responses=error_responses(503))
ShortQuery = Annotated[Short | None, Query()]
Frames = Callable[[BaseModel], None]


def _version(made: EnvironmentVersionView) -> str:
    return f"version {made.version}"


def admin(who: Principal, what: str) -> None:
    if not who.is_admin:
        raise Forbidden(f"{what} needs the admin role")


class TarballResponse(FileResponse):
    """A tarball with its digest; Range requests answered (resumable downloads)."""

    chunk_size = 1 << 20

    def __init__(self, row: EnvironmentVersion) -> None:
        super().__init__(
            row.path,
            media_type="application/x-tar",
            filename=Path(row.path).name,
            headers={DIGEST_HEADER: row.digest, VERSION_HEADER: row.version},
        )


def ndjson(run: Callable[[Frames], None], failed: Callable[[str, int], BaseModel]) -> Response:
    """Run ``run`` in a thread; every frame it sends becomes one line of the answer.
    An error becomes a last ``failed(detail, status)`` line (the status line is sent)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[BaseModel | None] = asyncio.Queue()

    def put(item: BaseModel | None) -> None:
        with contextlib.suppress(RuntimeError):  # the server is shutting down
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def worker() -> None:
        try:
            run(put)
        except ServiceError as exc:
            put(failed(exc.detail, exc.status))
        except Exception as exc:
            log.exception("environment operation failed")
            put(failed(f"internal error: {exc}", 500))
        finally:
            put(None)

    threading.Thread(target=worker, name="environments-op", daemon=True).start()

    async def lines() -> AsyncIterator[bytes]:
        while (item := await queue.get()) is not None:
            yield item.model_dump_json(exclude_none=True).encode() + b"\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


def progress(work: Work) -> Response:
    def run(send: Frames) -> None:
        send(Progress(phase="done", result=work(send)))

    return ndjson(run, lambda detail, status: Progress(phase="failed", error=detail, status=status))


# -- workspaces ---------------------------------------------------------------------
@router.get("")
async def list_workspaces(host: HostDep, who: UserDep) -> list[WorkspaceView]:
    return await asyncio.to_thread(host.environments.list_workspaces)


@router.post("", status_code=201)
async def create(req: WorkspaceCreate, host: HostDep, who: UserDep) -> WorkspaceView:
    admin(who, "creating a workspace")
    audited = host.audit.after(host.environments.create, who, "environment.create", req.name)
    return await asyncio.to_thread(audited, req)


@router.post("/{name}/start")
async def start(name: str, host: HostDep, who: UserDep) -> WorkspaceView:
    admin(who, "starting a workspace")
    audited = host.audit.after(host.environments.start, who, "environment.start", name)
    return await asyncio.to_thread(audited, name)


@router.post("/{name}/stop")
async def stop(name: str, host: HostDep, who: UserDep) -> WorkspaceView:
    admin(who, "stopping a workspace")
    audited = host.audit.after(host.environments.stop, who, "environment.stop", name)
    return await asyncio.to_thread(audited, name)


@router.delete("/{name}", status_code=204)
async def delete(name: str, host: HostDep, who: UserDep, force: bool = False) -> Response:
    admin(who, "deleting a workspace")
    audited = host.audit.after(host.environments.delete, who, "environment.delete", name)
    await asyncio.to_thread(audited, name, force)
    return Response(status_code=204)


@router.post("/{name}/exec", response_class=Response, responses=NDJSON)
async def exec_script(
    name: str,
    request: Request,
    host: HostDep,
    who: UserDep,
    command: Annotated[QueryText | None, Query()] = None,
) -> Response:
    """Run the body as a shell script (or ``command`` with the body as its stdin)."""
    admin(who, "a shell in a workspace")
    stdin = await request.body()
    envs = host.environments
    await asyncio.to_thread(envs.check_exec, name)

    def run(send: Frames) -> None:
        def output(stream: str, data: bytes) -> None:
            send(ExecFrame(stream=stream, data=base64.b64encode(data).decode()))

        send(ExecFrame(stream="exit", exit_code=envs.exec(name, stdin, command, output)))

    return ndjson(run, lambda detail, _: ExecFrame(stream="exit", error=detail))


@router.websocket("/{name}/terminal")
async def terminal(ws: WebSocket, name: str) -> None:
    """An interactive terminal (``docker exec`` with a TTY) in the running workspace."""
    host = ws.app.state.host
    channel = StarletteChannel(ws)
    header = ws.headers.get("authorization")
    if header is None and "token" in ws.query_params:
        header = f"Bearer {ws.query_params['token']}"
    try:
        admin(host.auth.user(header), "a shell in a workspace")
        container = await asyncio.to_thread(host.environments.workspaces.get, valid_name(name))
        if container.status != "running":
            raise Conflict(f"workspace {name} is {container.status}: kawa container start {name}")
        client = host.environments.docker()
    except ServiceError as exc:
        await channel.close(4000 + exc.status, exc.detail)
        return
    await channel.accept()

    async def accept(stream: MuxStream) -> None:
        await serve_terminal(stream, client, str(container.id), f"workspace {name}")

    mux = Mux(channel, accept=accept)
    try:
        with contextlib.suppress(SessionClosed):
            await mux.send(proto.ready_frame({"workspace": name}).encode())
        await mux.run()
    finally:
        await channel.close(proto.CLOSE_NORMAL, "")


# -- versions -----------------------------------------------------------------------
@router.get("/tarballs")
async def tarballs(
    host: HostDep, who: UserDep, name: ShortQuery = None
) -> list[EnvironmentVersionView]:
    return host.environments.tarballs(name)


@router.post("/{name}/package", response_class=Response, responses=NDJSON)
async def package(name: str, host: HostDep, who: UserDep) -> Response:
    admin(who, "packaging an environment")
    work = await asyncio.to_thread(host.environments.start_package, name)
    return progress(host.audit.after(work, who, "environment.package", name, _version))


@router.post("/{name}/import", response_class=Response, responses=NDJSON)
async def import_tarball(name: str, request: Request, host: HostDep, who: UserDep) -> Response:
    """The body is a ``docker save`` archive or a root filesystem tar."""
    admin(who, "importing an environment")
    envs = host.environments
    valid_name(name)
    envs.dir.mkdir(parents=True, exist_ok=True)
    upload = envs.dir / f".upload-{uuid.uuid4().hex}.tar"
    try:
        with upload.open("wb") as f:
            async for chunk in request.stream():
                f.write(chunk)
    except BaseException:
        upload.unlink(missing_ok=True)
        raise
    work = await asyncio.to_thread(envs.start_import, name, upload)
    return progress(host.audit.after(work, who, "environment.import", name, _version))


@router.get("/{name}/tarball", response_class=Response, responses=TARBALL)
async def export_tarball(
    name: str,
    host: HostDep,
    who: UserDep,
    version: Annotated[Short | None, Query(description="default: the newest")] = None,
) -> Response:
    if who.role == "viewer":
        raise Forbidden("the viewer role cannot download environments")
    return TarballResponse(host.environments.tarball(valid_name(name), version))


@router.post("/{name}/bootstrap", response_class=Response, responses=NDJSON)
async def bootstrap(
    name: str,
    host: HostDep,
    who: UserDep,
    suite: Annotated[Short, Query()] = "bookworm",
    mirror: Annotated[Url | None, Query()] = None,
) -> Response:
    """Build a base environment from the OS package mirror (debootstrap) as ``name``."""
    admin(who, "bootstrapping an environment")
    work = await asyncio.to_thread(host.environments.start_bootstrap, name, suite, mirror)
    return progress(host.audit.after(work, who, "environment.bootstrap", name, _version))
