"""The runner's HTTP API, called by the host with the cluster secret."""

# No `from __future__ import annotations`: FastAPI must see the local Annotated aliases.
import asyncio
import contextlib
import hmac
from collections.abc import AsyncIterator
from typing import Annotated

import docker.errors
from fastapi import Depends, FastAPI, Header, HTTPException
from fastapi.responses import StreamingResponse

from kawa import __version__
from kawa.protocol.runner_api import RemoveVps, RunnerAck, RunTask
from kawa.runner.executor import StartError, UnknownTask
from kawa.runner.executor_router import ExecutorRouter
from kawa.runner.files import router as files_router
from kawa.runner.gpus import default_probe
from kawa.runner.inventory import Inventory
from kawa.runner.service import RunnerService
from kawa.runner.streams import router as streams_router
from kawa.settings import RunnerConfig

STARTUP_WAIT_S = 30.0
"""How long an order waits for the runner to finish registering and re-adopting."""


def create_runner_app(config: RunnerConfig) -> FastAPI:
    if not config.cluster_secret:
        raise ValueError("the runner needs a cluster_secret")
    inventory = Inventory(
        default_probe(config.gpu_inventory), config.sysfs_root, config.cores, config.memory
    )
    service = RunnerService(config, inventory)
    secret = config.cluster_secret.encode()

    def authenticated(authorization: Annotated[str | None, Header()] = None) -> None:
        token = (authorization or "").removeprefix("Bearer ").strip().encode()
        if not token or not hmac.compare_digest(token, secret):
            raise HTTPException(401, "invalid cluster secret")

    async def executor() -> ExecutorRouter:
        # An order that arrives while the runner re-adopts its containers waits for it.
        try:
            await asyncio.wait_for(service.ready.wait(), STARTUP_WAIT_S)
        except TimeoutError:
            raise HTTPException(503, "runner is still starting up") from None
        assert service.executor is not None
        return service.executor

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        main = asyncio.create_task(service.run())
        try:
            yield
        finally:
            main.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await main
            await service.close()

    app = FastAPI(  # no /docs or /openapi.json: only the host calls a runner
        title="Kawa runner",
        version=__version__,
        lifespan=lifespan,
        dependencies=[Depends(authenticated)],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.service = service
    app.include_router(streams_router)
    app.include_router(files_router)  # issue 4: files inside a task's container
    Exec = Annotated[ExecutorRouter, Depends(executor)]

    @app.get("/health")
    async def health() -> dict[str, str]:
        """The host asks this before it registers the runner (can it reach it back?)."""
        return {"status": "ok", "name": config.name}

    @app.post("/tasks")
    async def run_task(order: RunTask, ex: Exec) -> RunnerAck:
        try:
            await service.prepare_environment(order)  # issue 3: its environment first
            await asyncio.to_thread(ex.start, order)
        except StartError as exc:
            raise HTTPException(422, str(exc)) from None
        return RunnerAck(state="running")

    @app.post("/tasks/{task_id}/snapshot")
    async def snapshot(task_id: str, ex: Exec) -> RunnerAck:
        try:
            image = await asyncio.to_thread(ex.snapshot, task_id)
        except UnknownTask as exc:
            raise HTTPException(409, str(exc)) from None
        return RunnerAck(state="snapshot", detail=image)

    @app.post("/tasks/{task_id}/remove")
    async def remove(task_id: str, body: RemoveVps, ex: Exec) -> RunnerAck:
        try:
            await asyncio.to_thread(ex.remove, task_id, body.force)
        except UnknownTask as exc:
            raise HTTPException(409, str(exc)) from None
        except docker.errors.APIError as exc:
            raise HTTPException(409, f"docker: {exc.explanation or exc}") from None
        return RunnerAck(state="removed")

    @app.post("/tasks/{task_id}/{action}")
    async def control(task_id: str, action: str, ex: Exec) -> RunnerAck:
        method = {
            "kill": ex.kill,
            "stop": ex.kill,
            "pause": ex.pause,
            "resume": ex.resume,
            "restart": ex.restart,
        }
        if action not in method:
            raise HTTPException(404, f"unknown action {action!r}")
        try:
            await asyncio.to_thread(method[action], task_id)
        except UnknownTask as exc:
            raise HTTPException(409, str(exc)) from None
        except StartError as exc:
            raise HTTPException(422, str(exc)) from None
        state = {"pause": "paused", "resume": "running", "restart": "running"}.get(action)
        return RunnerAck(state=state or "stopping")

    @app.get("/tasks/{task_id}/logs")
    async def logs(
        task_id: str, ex: Exec, stream: str = "stdout", follow: bool = False, offset: int = 0
    ) -> StreamingResponse:
        if stream not in ("stdout", "stderr"):
            raise HTTPException(400, "stream must be stdout or stderr")
        path = ex.log_path(task_id, stream)
        entry = service.journal.get(task_id)
        if not path.exists() and entry is None:
            raise HTTPException(404, f"no logs for task {task_id} on {config.name}")

        def ended() -> bool:
            e = service.journal.get(task_id)
            return e is None or e.state == "ended"

        async def tail() -> AsyncIterator[bytes]:
            while not path.exists():
                if ended():
                    return
                await asyncio.sleep(0.05)
            with path.open("rb") as f:
                f.seek(max(0, offset))
                while True:
                    chunk = f.read(65536)
                    if chunk:
                        yield chunk
                    elif not follow or ended():
                        rest = f.read()
                        if rest:
                            yield rest
                        return
                    else:
                        await asyncio.sleep(0.1)

        return StreamingResponse(tail(), media_type="application/octet-stream")

    return app
