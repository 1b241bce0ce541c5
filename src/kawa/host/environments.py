"""Container environments on the host: workspaces, packaging, import, tarballs, and
the sync progress runners report.

Long operations (package, import, bootstrap) run in a worker thread and report
:class:`Progress` through an ``emit`` callback; one at a time per environment name
(a second one is refused with 409). Every one of them ends in :meth:`_publish`: save
the image ``kawa-env/NAME:VERSION`` as a tarball with its sha256, record the version,
and drop versions beyond the newest ``keep_versions`` (rows, tarballs and image tags).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors
from sqlalchemy.orm import Session, sessionmaker

from kawa.core.environments import check_name, check_version, image_ref, new_version, tarball_name
from kawa.core.task_states import TaskState
from kawa.host import bootstrap, env_versions, tarballs
from kawa.host.errors import BadRequest, Conflict, NotFound, Unavailable
from kawa.host.ledger import Ledger
from kawa.host.workspaces import Output, Workspaces
from kawa.protocol.environments import (
    EnvironmentVersionView,
    Progress,
    SyncProgress,
    WorkspaceCreate,
    WorkspaceView,
)
from kawa.settings import HostConfig
from kawa.store.database import writing
from kawa.store.models import Environment, EnvironmentVersion, Task

log = logging.getLogger(__name__)
Emit = Callable[[Progress], None]
Work = Callable[[Emit], EnvironmentVersionView]
SHARED_SUBDIR = "kawa-containers"
SYNC_PREFIX = "syncing environment "


def tarball_dir(config: HostConfig) -> Path:
    if config.shared_dir is not None:
        return config.shared_dir / SHARED_SUBDIR
    return config.data_dir / "environments"


def valid_name(name: str) -> str:
    try:
        return check_name(name)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def throttled(emit: Emit, phase: str, every: float = 0.2) -> tarballs.Step:
    last = [0.0]

    def step(done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - last[0] >= every:
            last[0] = now
            emit(Progress(phase=phase, done=done, total=max(total, done) if total else None))

    return step


class EnvironmentService:
    def __init__(
        self,
        config: HostConfig,
        sessions: sessionmaker[Session],
        ledger: Ledger,
        cluster_id: str,
    ) -> None:
        self.config = config
        self.sessions = sessions
        self.ledger = ledger
        self.dir = tarball_dir(config)
        self.keep = max(1, config.keep_versions)
        self.workspaces = Workspaces(self.docker, cluster_id)
        self._client: docker.DockerClient | None = None
        self._lock = threading.Lock()
        self._busy: set[str] = set()
        self._sweep()

    def _sweep(self) -> None:
        """Remove what a host that stopped mid-way left: half-written tarballs, uploads."""
        if self.dir.is_dir():
            for left in [*self.dir.glob("*.partial"), *self.dir.glob(".upload-*")]:
                left.unlink(missing_ok=True)

    def docker(self) -> docker.DockerClient:
        with self._lock:
            if self._client is None:
                try:
                    self._client = docker.from_env(timeout=1800)
                except docker.errors.DockerException as exc:
                    raise Unavailable(f"the host cannot reach Docker: {exc}") from None
            return self._client

    # -- workspaces -----------------------------------------------------------------
    def list_workspaces(self) -> list[WorkspaceView]:
        with self._lock:
            busy = set(self._busy)
        return [
            self.workspaces.view(c, c.labels["kawa.workspace"] in busy)
            for c in self.workspaces.all()
        ]

    def create(self, req: WorkspaceCreate) -> WorkspaceView:
        name = valid_name(req.name)
        image = req.image or self._default_image()
        return self.workspaces.view(self.workspaces.create(name, image))

    def _default_image(self) -> str:
        with self.sessions() as s:
            env = s.get(Environment, self.config.default_container)
        image = self.config.default_image or (env.image if env else None)
        if not image:
            raise BadRequest("no image given (--from IMAGE) and the host has no default image")
        return image

    def start(self, name: str) -> WorkspaceView:
        return self.workspaces.view(self.workspaces.start(valid_name(name)))

    def stop(self, name: str) -> WorkspaceView:
        return self.workspaces.view(self.workspaces.stop(valid_name(name)))

    def delete(self, name: str, force: bool) -> None:
        self.workspaces.delete(valid_name(name), force)

    def check_exec(self, name: str) -> None:
        """Refuse a shell before its answer starts: no such workspace (404), not
        running (409)."""
        container = self.workspaces.get(valid_name(name))
        if container.status != "running":
            raise Conflict(
                f"workspace {name!r} is {container.status}; `kawa container start {name}` first"
            )

    def exec(self, name: str, stdin: bytes, command: str | None, output: Output) -> int:
        return self.workspaces.exec(valid_name(name), stdin, command, output)

    # -- versions -------------------------------------------------------------------
    def tarballs(self, name: str | None = None) -> list[EnvironmentVersionView]:
        with self.sessions() as s:
            return env_versions.views(s, valid_name(name) if name else None)

    def tarball(self, name: str, version: str | None) -> EnvironmentVersion:
        with self.sessions() as s:
            row = env_versions.find(s, name, version)
        if row is None or not Path(row.path).is_file():
            what = f"{name}@{version}" if version else f"{name!r}"
            raise NotFound(f"no packaged version of environment {what}")
        return row

    # -- long operations ------------------------------------------------------------
    def start_package(self, name: str) -> Work:
        """Check and reserve now (400/404/409 before any answer starts); the work to run."""
        self.workspaces.get(valid_name(name))
        return self._reserved(name, lambda emit: self.package(name, emit))

    def start_import(self, name: str, upload: Path) -> Work:
        """Check an uploaded file and reserve ``name``; the work imports and removes it."""
        try:
            valid_name(name)
            kind, detail = tarballs.inspect(upload)
            work = self._reserved(
                name, lambda emit: self.import_archive(name, upload, kind, detail, emit)
            )
        except BaseException:
            upload.unlink(missing_ok=True)
            raise

        def run(emit: Emit) -> EnvironmentVersionView:
            try:
                return work(emit)
            finally:
                upload.unlink(missing_ok=True)

        return run

    def start_bootstrap(self, name: str, suite: str, mirror: str | None) -> Work:
        """Reserve ``name``; the work builds a Debian root filesystem from the package
        mirror (cached) and imports it as a new version."""
        valid_name(name)

        def work(emit: Emit) -> EnvironmentVersionView:
            try:
                tar = bootstrap.rootfs_tar(suite, mirror, lambda text: emit(Progress(phase=text)))
            except (bootstrap.BootstrapError, OSError) as exc:
                raise BadRequest(f"bootstrap failed: {exc}") from None
            _, command = tarballs.inspect(tar)
            return self.import_archive(name, tar, tarballs.ArchiveKind.ROOTFS, command, emit)

        return self._reserved(name, work)

    def _reserved(self, name: str, work: Work) -> Work:
        """Reserve ``name`` for one long operation (409 if one runs) until ``work`` ends."""
        with self._lock:
            if name in self._busy:
                raise Conflict(f"environment {name!r} is being packaged or imported already")
            self._busy.add(name)

        def run(emit: Emit) -> EnvironmentVersionView:
            try:
                return work(emit)
            finally:
                with self._lock:
                    self._busy.discard(name)

        return run

    def package(self, name: str, emit: Emit) -> EnvironmentVersionView:
        version = self._new_version(name)
        emit(Progress(phase="committing"))
        self.workspaces.commit(name, image_ref(name, version).rpartition(":")[0], version)
        return self._publish(name, version, emit)

    def import_archive(
        self, name: str, path: Path, kind: str, detail: list[str], emit: Emit
    ) -> EnvironmentVersionView:
        client, version = self.docker(), self._new_version(name)
        ref = image_ref(name, version)
        if kind == tarballs.ArchiveKind.DOCKER:
            image_id = tarballs.load_archive(client, path, detail, throttled(emit, "loading"))
            repo, _, tag = ref.rpartition(":")
            client.api.tag(image_id, repo, tag)
        else:
            tarballs.import_rootfs(client, path, detail, ref, throttled(emit, "importing"))
        return self._publish(name, version, emit)

    def _new_version(self, name: str) -> str:
        with self.sessions() as s:
            taken = {v.version for v in env_versions.versions(s, name)}
        return check_version(new_version(env_versions.now(), taken))

    def _publish(self, name: str, version: str, emit: Emit) -> EnvironmentVersionView:
        ref = image_ref(name, version)
        self.dir.mkdir(parents=True, exist_ok=True)
        dest = self.dir / tarball_name(name, version)
        digest, size = tarballs.save(self.docker(), ref, dest, throttled(emit, "saving"))
        row = EnvironmentVersion(
            name=name,
            version=version,
            digest=digest,
            size=size,
            path=str(dest),
            image=ref,
            created_at=env_versions.now(),
        )
        with writing(self.sessions) as s:
            env_versions.record(s, row)
            s.flush()
            old = env_versions.beyond(s, name, self.keep)
            dropped = [(o.path, o.image) for o in old]
            for o in old:
                s.delete(o)
        for path, image in dropped:
            Path(path).unlink(missing_ok=True)
            with contextlib.suppress(docker.errors.APIError):
                self.docker().api.remove_image(image)
        log.info("environment %s@%s packaged: %s, %d bytes", name, version, digest, size)
        return env_versions.view(row, newest=True)

    # -- runners' sync progress -----------------------------------------------------
    def sync_progress(self, report: SyncProgress) -> None:
        with self.ledger.change() as change:
            for task_id in report.tasks:
                task = change.session.get(Task, int(task_id)) if task_id.isdigit() else None
                if task is None or task.node != report.node:
                    continue
                if report.text is None:
                    if (task.waiting_reason or "").startswith(SYNC_PREFIX):
                        task.waiting_reason = None
                        change.touch(task)
                elif task.state == TaskState.ASSIGNING.value:
                    task.waiting_reason = report.text[:512]
                    change.touch(task)
