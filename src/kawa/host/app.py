"""The host application: wires the store, services, loops and routes together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker

from kawa import __version__
from kawa.core.ids import IdGenerator
from kawa.host.auth import Authenticator
from kawa.host.environments import EnvironmentService
from kawa.host.errors import ServiceError
from kawa.host.events import EventBus
from kawa.host.ledger import Ledger
from kawa.host.log_service import LogService
from kawa.host.metrics import metrics_router
from kawa.host.node_service import NodeService
from kawa.host.report_service import ReportService
from kawa.host.routes import environments, events, nodes, runner_environments, runners, tasks
from kawa.host.routes.files import router as files_router
from kawa.host.routes.streams import router as streams_router
from kawa.host.runner_link import RunnerLink
from kawa.host.scheduling import SchedulerLoop
from kawa.host.task_service import TaskService
from kawa.protocol.common import API_PREFIX
from kawa.settings import HostConfig
from kawa.store.database import make_engine, migrate, session_factory
from kawa.store.models import ClusterMeta, Environment

if TYPE_CHECKING:
    from kawa.host.ssh_gateway import SSHGateway

log = logging.getLogger(__name__)


def prepare_database(config: HostConfig) -> sessionmaker[Session]:
    """Migrate the schema and make sure the cluster has an id."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(config.database())
    migrate(engine)
    sessions = session_factory(engine)
    with sessions.begin() as s:
        if s.get(ClusterMeta, "cluster_id") is None:
            s.add(ClusterMeta(key="cluster_id", value=uuid.uuid4().hex[:12]))
    return sessions


def register_environment(sessions: sessionmaker[Session], name: str, image: str) -> None:
    """Point environment ``name`` at a local image (used for the default environment)."""
    with sessions.begin() as s:
        env = s.get(Environment, name)
        if env is None:
            s.add(
                Environment(
                    name=name,
                    image=image,
                    version="local",
                    digest=None,
                    created_at=datetime.now(UTC),
                )
            )
        elif env.digest is None:  # a packaged environment keeps its newest version
            env.image = image


class Host:
    """Everything the routes need, built once per process."""

    def __init__(self, config: HostConfig, sessions: sessionmaker[Session]) -> None:
        self.config = config
        self.sessions = sessions
        with sessions() as s:
            meta = s.get(ClusterMeta, "cluster_id")
            assert meta is not None, "prepare_database() first"
            self.cluster_id = meta.value
        self.bus = EventBus()
        self.auth = Authenticator(sessions, config.cluster_secret)
        self.link = RunnerLink(config.cluster_secret)
        self.ledger = Ledger(sessions, self.bus)
        self.tasks = TaskService(
            self.ledger, IdGenerator(), self.link, config.default_container, config.sweep_limit
        )
        self.nodes = NodeService(
            self.ledger,
            self.bus,
            self.link,
            self.cluster_id,
            config.heartbeat_interval,
            config.node_timeout,
        )
        self.reports = ReportService(self.ledger)
        self.logs = LogService(self.ledger, self.link, config.shared_dir)
        self.environments = EnvironmentService(config, sessions, self.ledger, self.cluster_id)
        self.scheduler = SchedulerLoop(
            self.ledger, self.link, config.strategy, config.starvation_after
        )
        self.ledger.on_release = self.scheduler.wake

    async def run_loops(self) -> None:
        await asyncio.gather(self.scheduler.run(), self.nodes.monitor())


def _service_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status)


def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"] if p != "body")
        message = str(err["msg"]).removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    return JSONResponse({"detail": "; ".join(problems)}, status_code=422)


async def start_ssh_gateway(host: Host) -> SSHGateway | None:
    """The SSH gateway on ``host.ssh_port`` (0: off); a port in use is logged, not fatal."""
    if not host.config.ssh_port:
        return None
    from kawa.host.ssh_gateway import SSHGateway

    gateway = SSHGateway(host)
    try:
        await gateway.start()
    except OSError as exc:
        logging.getLogger(__name__).warning(
            "SSH gateway not started on port %s: %s", host.config.ssh_port, exc
        )
        return None
    return gateway


def create_app(config: HostConfig, sessions: sessionmaker[Session] | None = None) -> FastAPI:
    sessions = sessions or prepare_database(config)
    if config.default_image:
        register_environment(sessions, config.default_container, config.default_image)
    host = Host(config, sessions)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loops = asyncio.create_task(host.run_loops())
        gateway = await start_ssh_gateway(host)
        try:
            yield
        finally:
            if gateway is not None:
                await gateway.stop()
            loops.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loops
            await host.scheduler.stop()
            host.bus.close()
            await host.link.close()

    app = FastAPI(title="Kawa host", version=__version__, lifespan=lifespan)
    app.state.host = host
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for module in (tasks, nodes, runners, events):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(streams_router, prefix=API_PREFIX)  # terminal, forward (WebSocket)
    app.include_router(files_router, prefix=API_PREFIX)  # files in a task's container
    for module in (environments, runner_environments):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(metrics_router(host))  # Prometheus: /metrics, no authentication

    @app.get(API_PREFIX + "/health", tags=["meta"])
    def health() -> dict[str, str]:
        return {"status": "ok", "cluster_id": host.cluster_id, "version": __version__}

    return app
