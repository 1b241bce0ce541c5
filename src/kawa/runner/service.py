"""The runner's life: register, adopt what it ran before, heartbeat, report endings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

import docker

from kawa import __version__
from kawa.client.errors import KawaError
from kawa.client.runner_channel import HostChannel
from kawa.protocol.join import PROTOCOL_VERSION
from kawa.protocol.nodes import Heartbeat, NodeRegistration, RunnerTaskObservation
from kawa.protocol.runner_api import ExitKind, RunTask, TaskReport
from kawa.runner.backends import BuildExecutor
from kawa.runner.env_sync import EnvironmentSync
from kawa.runner.executor import ContainerExecutor, StartError
from kawa.runner.inventory import Inventory
from kawa.runner.journal import Journal
from kawa.settings import RunnerConfig

log = logging.getLogger(__name__)


class RunnerService:
    def __init__(
        self, config: RunnerConfig, inventory: Inventory, build_executor: BuildExecutor
    ) -> None:
        self.config = config
        self.inventory = inventory
        self._build_executor = build_executor
        """Composes the executor once the host has named the cluster."""
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(config.data_dir / "journal.sqlite")
        self.channel = HostChannel(config.host_url, config.cluster_secret, ca_file=config.ca_file)
        self.executor: ContainerExecutor | None = None
        self.environments: EnvironmentSync | None = None
        self.ready = asyncio.Event()
        self.heartbeat_interval = 2.0
        self._reports = asyncio.Event()
        self._an_end = asyncio.Event()
        """Set (and replaced) when a task ends: wakes the followers of task logs."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self.preparing: set[str] = set()
        """Tasks whose packaged environment is being fetched (not journaled yet)."""

    # -- lifecycle ------------------------------------------------------------------
    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        cluster_id = await self._register()
        known = self.journal.get_meta("cluster_id")
        if known not in (None, cluster_id):
            log.warning(
                "journal belongs to cluster %s, host is %s: starting afresh", known, cluster_id
            )
        self.journal.set_meta("cluster_id", cluster_id)
        executor = self._build_executor(self.journal, cluster_id, self._on_end)
        self.environments = EnvironmentSync(
            docker.from_env(timeout=1800),  # a docker load of a big environment is slow
            self.journal,
            self.channel.url,
            self.config.cluster_secret,
            self.config.name,
            self.config.shared_dir,
            self.config.data_dir / "environments",
            ca_file=self.config.ca_file,
        )
        live = self.journal.live() if known in (None, cluster_id) else []
        await asyncio.to_thread(executor.adopt, live)
        # Published only now: a task started during adoption would have its container
        # taken for an orphan (it is not in ``live``) and removed.
        self.executor = executor
        self.ready.set()
        self._reports.set()
        await asyncio.gather(self._heartbeats(), self._send_reports())

    async def _register(self) -> str:
        delay = 0.2
        while True:
            reg = NodeRegistration(
                name=self.config.name,
                url=self.config.url(),
                inventory=self.inventory.read(),
                version=__version__,
                protocol_version=PROTOCOL_VERSION,
            )
            try:
                accepted = await self.channel.register(reg)
            except KawaError as exc:
                if exc.status == 401:
                    log.error("host refused registration: %s (check cluster_secret)", exc)
                elif exc.status in (400, 409):  # unreachable address, name taken, protocol
                    log.error("host refused registration: %s", exc)
                elif exc.status == 422:  # a host older than this runner's registration
                    log.error(
                        "host refused registration: %s (an older host? install the same "
                        "Kawa release on host and runners)",
                        exc,
                    )
                elif delay >= 5.0:
                    log.warning("registration failed: %s; retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self.heartbeat_interval = accepted.heartbeat_interval
            log.info("registered with %s as %s", self.channel.url, self.config.name)
            return accepted.cluster_id

    def observations(self) -> list[RunnerTaskObservation]:
        """Every task this runner has: ``running``, ``paused``, ``starting`` (its
        environment or container is being prepared; the host waits for it), and ended
        ones whose ending the host has not acknowledged yet (``exited``: the host then
        knows the task ran here and waits for the report)."""
        seen = [
            RunnerTaskObservation(
                task_id=e.task_id, state=e.state if e.state in ("paused", "starting") else "running"
            )
            for e in self.journal.live()
        ]
        known = {o.task_id for o in seen}
        preparing = sorted(self.preparing - known)
        ended = [
            RunnerTaskObservation(task_id=e.task_id, state="exited")
            for e in self.journal.unreported()
        ]
        starting = [RunnerTaskObservation(task_id=t, state="starting") for t in preparing]
        return seen + starting + ended

    async def _heartbeats(self) -> None:
        """The first heartbeat goes right away (a restarted runner's adopted tasks are
        ``running`` again at once), then one every ``heartbeat_interval`` counted from
        the start of the previous one: a heartbeat that took longer (the process was
        stopped, the host was slow) is followed by the next at once, not an interval
        later."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.heartbeat_interval
            await self._heartbeat()
            self.journal.forget_before(datetime.now(UTC) - timedelta(days=7))
            await asyncio.sleep(max(0.0, due - loop.time()))

    async def _heartbeat(self) -> None:
        sample = await asyncio.to_thread(self.inventory.sample)
        hb = Heartbeat(name=self.config.name, usage=sample, tasks=self.observations())
        try:
            await self.channel.heartbeat(hb)
        except KawaError as exc:
            if exc.status != 404:
                log.warning("heartbeat failed: %s", exc)
                return
            log.info("the host at %s does not know this node: registering again", self.channel.url)
            await self._register()  # the host forgot this node (a new database)
            hb = Heartbeat(name=self.config.name, usage=sample, tasks=self.observations())
            try:
                await self.channel.heartbeat(hb)
            except KawaError as again:
                log.warning("heartbeat after registering again failed: %s", again)
        if self.environments is not None:
            self.environments.use_host(self.channel.url)

    def _on_end(self, task_id: str, kind: ExitKind, code: int | None, error: str | None) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._ended)

    def _ended(self) -> None:
        self._reports.set()
        self._an_end.set()
        self._an_end = asyncio.Event()

    async def until_an_end(self, seconds: float) -> None:
        """Return once any task ends (it is journaled by then), or after ``seconds``."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._an_end.wait()

    async def _send_reports(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for drops a cancellation
            # that comes as the event is set, and this loop would outlive the runner's stop
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._reports.wait()
            self._reports.clear()
            for entry in self.journal.unreported():
                report = TaskReport(
                    task_id=entry.task_id,
                    node=self.config.name,
                    state="ended",
                    exit_kind=entry.exit_kind,
                    exit_code=entry.exit_code,
                    error=entry.error,
                    at=entry.ended_at or datetime.now(UTC),
                )
                try:
                    await self.channel.report(report)
                except KawaError as exc:
                    log.warning("report of %s not delivered: %s", entry.task_id, exc)
                    break
                self.journal.acknowledged(entry.task_id)

    async def prepare_environment(self, order: RunTask) -> None:
        """Fetch and load the order's packaged environment unless Docker has it."""
        if order.environment is None:
            return
        if self.environments is None:
            raise StartError("the runner is not registered with the host yet")
        self.preparing.add(order.task_id)
        try:
            await self.environments.prepare(order)
        finally:
            self.preparing.discard(order.task_id)

    async def close(self) -> None:
        if self.environments is not None:
            self.environments.close()
        await self.channel.aclose()
        self.journal.close()
