"""The host application: wires the store, services, loops and routes together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker

from kawa import __version__
from kawa.body_limit import BodyLimit, Limit
from kawa.core.ids import IdGenerator
from kawa.host.admission import InFlightLimit
from kawa.host.audit import AuditLog
from kawa.host.auth import Authenticator
from kawa.host.batch_logs import BatchLogs
from kawa.host.dashboard import dashboard_router
from kawa.host.dry_run import DryRun
from kawa.host.environments import EnvironmentService
from kawa.host.errors import ServiceError, error_responses
from kawa.host.event_relay import EventRelay
from kawa.host.events import EventBus
from kawa.host.join_service import JoinService
from kawa.host.leadership import Leadership
from kawa.host.ledger import Ledger
from kawa.host.log_service import LogService
from kawa.host.metrics import metrics_router
from kawa.host.node_service import NodeService
from kawa.host.report_service import ReportService
from kawa.host.routes import (
    batches,
    environments,
    events,
    join,
    nodes,
    runner_environments,
    runners,
    tasks,
)
from kawa.host.routes.audit import router as audit_router
from kawa.host.routes.files import router as files_router
from kawa.host.routes.meta import router as meta_router
from kawa.host.routes.streams import router as streams_router
from kawa.host.runner_link import RunnerLink
from kawa.host.scheduling import SchedulerLoop
from kawa.host.stream_sessions import StreamSessions
from kawa.host.task_service import TaskService
from kawa.host.task_waits import TaskWaits
from kawa.host.vps_retention import VpsRetention
from kawa.host.worker_threads import bind_worker_threads
from kawa.protocol.bounds import MAX_BODY, MAX_SCRIPT_BODY
from kawa.protocol.common import API_PREFIX, ErrorItem, ErrorResponse
from kawa.protocol.join import PROTOCOL_VERSION
from kawa.protocol.tasks import TaskView
from kawa.settings import HostConfig
from kawa.store.advisory_lock import AdvisoryLock, is_postgresql
from kawa.store.database import make_engine, migrate, session_factory
from kawa.store.models import ClusterMeta, Environment
from kawa.store.write_versions import write_versions

if TYPE_CHECKING:
    from kawa.gateway.server import SSHGateway

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
        self.audit = AuditLog(sessions, config.audit_max_rows)
        self.link = RunnerLink(config.cluster_secret, ca_file=config.ca_file)
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
        self.joins = JoinService(
            sessions, self.cluster_id, config.cluster_secret, config.heartbeat_interval
        )
        self.reports = ReportService(self.ledger)
        self.logs = LogService(self.ledger, self.link, config.shared_dir)
        self.batch_logs = BatchLogs(self.ledger, self.logs)
        self.waits = TaskWaits(self.tasks, self.bus)
        self.stream_sessions = StreamSessions(config, self.auth, self.tasks, self.ledger, self.link)
        self.environments = EnvironmentService(config, sessions, self.ledger, self.cluster_id)
        self.scheduler = SchedulerLoop(
            self.ledger, self.link, config.strategy, config.starvation_after
        )
        # An order that cannot reach its runner is retried until the node is surely offline.
        self.scheduler.retry_window = 2 * config.node_timeout
        self.nodes.dispatching = self.scheduler.dispatching
        self.ledger.on_release = self.scheduler.wake
        self.ledger.on_arrival = self.scheduler.arrived
        self.vps_retention = VpsRetention(self.ledger, self.tasks, config.vps_retention)
        self.dry_run = DryRun(self.tasks, self.scheduler)
        self.submissions = InFlightLimit("submissions", config.submit_limit)
        self.gateway_port: int | None = None
        """The port the SSH gateway listens on; None while it does not."""
        url = config.database()
        shared = is_postgresql(url)
        self.leadership = Leadership(AdvisoryLock(url) if shared else None)
        """Whether this host leads: always with SQLite; with PostgreSQL, while it holds
        the database's leader lock (other hosts on the database stand by)."""
        self.scheduler.fence = self.leadership.confirm
        self.relay: EventRelay | None = None
        """Events to and from other hosts on the same database (PostgreSQL only)."""
        if shared:
            self.relay = EventRelay(
                url,
                self.bus,
                self._task_view,
                self.nodes.get,
                on_tasks=self._tasks_changed_elsewhere,
                on_nodes=lambda: write_versions(sessions).bump(["nodes"]),
            )

    def _tasks_changed_elsewhere(self) -> None:
        """Another host changed tasks: listings read them again; the scheduler looks."""
        write_versions(self.sessions).bump(["tasks"])
        self.scheduler.wake()

    def _task_view(self, task_id: str) -> TaskView:
        return self.ledger.view(task_id, history=False)

    async def run_relay(self) -> None:
        if self.relay is not None:
            await self.relay.run()

    @property
    def leading(self) -> bool:
        return self.leadership.leading

    async def run_loops(self) -> None:
        """The leader's work, whenever this host leads, until cancelled. Every host, leading
        or standing by, serves the API from the same worker threads."""
        bind_worker_threads(self.bus, self.config.api_threads)
        await self.leadership.run(self.lead)

    async def lead(self) -> None:
        """Schedule, dispatch, watch liveness and keep retention until cancelled; the
        state left by an earlier leader is taken over from the database, as after a
        restart (dispatches it left unanswered are settled by runners' heartbeats)."""
        self.nodes.begin_leading()
        self.scheduler.wake()
        try:
            await asyncio.gather(
                self.scheduler.run(),
                self.nodes.monitor(),
                self.vps_retention.run(),
                self.audit.run(),
            )
        finally:
            await self.scheduler.stop()


def _service_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    body = ErrorResponse(detail=exc.detail).model_dump(exclude_none=True)
    return JSONResponse(body, exc.status, headers=exc.headers)


def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    """422 with one readable ``detail`` line and each problem in ``errors``."""
    assert isinstance(exc, RequestValidationError)
    problems, items = [], []
    for err in exc.errors():
        loc = [p if isinstance(p, int) else str(p) for p in err.get("loc", ())]
        where = ".".join(str(p) for p in loc if p != "body")
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
        items.append(ErrorItem(loc=loc, msg=message, type=str(err.get("type", "value_error"))))
    body = ErrorResponse(detail="; ".join(problems) or "invalid request", errors=items)
    return JSONResponse(body.model_dump(), status_code=422)


def _internal_error(_: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", exc_info=exc)
    return JSONResponse({"detail": f"internal error: {type(exc).__name__}"}, status_code=500)


BODY_LIMITS = (
    Limit("PUT", re.compile(API_PREFIX + r"/tasks/[^/]+/files/content"), None),
    Limit("POST", re.compile(API_PREFIX + r"/environments/[^/]+/import"), None),
    Limit("POST", re.compile(API_PREFIX + r"/environments/[^/]+/exec"), MAX_SCRIPT_BODY),
)
"""Routes whose bodies are not bounded by MAX_BODY: streamed uploads, shell scripts."""


async def start_ssh_gateway(host: Host) -> SSHGateway | None:
    """The SSH gateway on ``host.ssh_port`` (0: off); a port in use is logged, not fatal."""
    if not host.config.ssh_port:
        return None
    from kawa.gateway.server import SSHGateway

    gateway = SSHGateway(host.config, host.tasks, host.link.tls)
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
        relay = asyncio.create_task(host.run_relay())
        gateway = await start_ssh_gateway(host)
        host.gateway_port = None if gateway is None else host.config.ssh_port
        try:
            yield
        finally:
            if gateway is not None:
                host.gateway_port = None
                await gateway.stop()
            for background in (loops, relay):
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await background
            await host.scheduler.stop()
            host.bus.close()
            await host.link.close()

    app = FastAPI(
        title="Kawa host",
        version=__version__,
        lifespan=lifespan,
        redirect_slashes=False,  # an API path answers itself or 404, never a redirect
        responses=error_responses(400, 401, 403, 404, 409, 413, 422),
    )
    app.state.host = host
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _internal_error)
    app.add_middleware(BodyLimit, default=MAX_BODY, limits=BODY_LIMITS)
    for module in (tasks, batches, nodes, runners, events, join):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(streams_router, prefix=API_PREFIX)  # terminal, forward (WebSocket)
    app.include_router(files_router, prefix=API_PREFIX)  # files in a task's container
    for module in (environments, runner_environments):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(audit_router, prefix=API_PREFIX)  # who changed what (admin)
    app.include_router(meta_router, prefix=API_PREFIX)  # whoami, info, new SSH keys
    app.include_router(metrics_router(host))  # Prometheus: /metrics (a token unless public)

    @app.get(API_PREFIX + "/health", tags=["meta"])
    async def health() -> dict[str, str | int | bool]:
        return {
            "status": "ok",
            "cluster_id": host.cluster_id,
            "version": __version__,
            "protocol_version": PROTOCOL_VERSION,
            "leading": host.leading,
        }

    app.include_router(dashboard_router())  # the web app at / (last: it answers any GET)
    return app
