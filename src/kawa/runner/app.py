"""The runner's HTTP API, called by the host with the cluster secret: composes the
runner (inventory, executors, service) and mounts its routes."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI

from kawa import __version__
from kawa.body_limit import BodyLimit, Limit
from kawa.protocol.bounds import MAX_BODY
from kawa.runner.backends import local_backends
from kawa.runner.files import router as files_router
from kawa.runner.gpus import default_probe
from kawa.runner.inventory import Inventory
from kawa.runner.routes import tasks
from kawa.runner.routes.deps import authenticated
from kawa.runner.service import RunnerService
from kawa.runner.streams import router as streams_router
from kawa.settings import RunnerConfig

BODY_LIMITS = (Limit("PUT", re.compile(r"/tasks/[^/]+/files/content"), None),)
"""Routes whose bodies are not bounded by MAX_BODY: a file written into a task's
container streams to the container as it arrives."""


def create_runner_app(config: RunnerConfig) -> FastAPI:
    if not config.cluster_secret:
        raise ValueError("the runner needs a cluster_secret")
    inventory = Inventory(
        default_probe(config.gpu_inventory), config.sysfs_root, config.cores, config.memory
    )
    service = RunnerService(config, inventory, local_backends(config))

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
    # Bodies are bounded before they are read, so before the cluster secret is checked.
    app.add_middleware(BodyLimit, default=MAX_BODY, limits=BODY_LIMITS)
    app.include_router(tasks.router)
    app.include_router(streams_router)  # terminal, forward (WebSocket)
    app.include_router(files_router)  # files inside a task's container

    @app.get("/health")
    async def health() -> dict[str, str]:
        """The host asks this before it registers the runner (can it reach it back?)."""
        return {"status": "ok", "name": config.name}

    return app
