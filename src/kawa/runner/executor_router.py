"""One executor in front of the two backends: Docker, and native when allowed."""

from __future__ import annotations

from pathlib import Path

from kawa.protocol.runner_api import RunTask
from kawa.runner.docker_executor import DockerExecutor
from kawa.runner.executor import StartError, UnknownTask
from kawa.runner.journal import Entry, Journal
from kawa.runner.native_executor import NativeExecutor


class ExecutorRouter:
    """Sends each task to the backend its order names and keeps both adopted."""

    def __init__(
        self, journal: Journal, docker: DockerExecutor, native: NativeExecutor | None,
        native_refusal: str = "this runner does not accept native tasks (allow_native = false)",
    ) -> None:
        self.journal = journal
        self.containers = docker
        self.native = native
        self.native_refusal = native_refusal
        self.docker = docker.docker
        """The Docker client (terminals and files reach containers through it)."""

    def _for(self, task_id: str) -> DockerExecutor | NativeExecutor:
        entry = self.journal.get(task_id)
        if entry is None:
            raise UnknownTask(f"task {task_id} is not running here")
        if entry.order.native:
            if self.native is None:
                raise UnknownTask(f"task {task_id} is native and native execution is off")
            return self.native
        return self.containers

    def start(self, order: RunTask) -> None:
        if not order.native:
            self.containers.start(order)
        elif self.native is None:
            raise StartError(self.native_refusal)
        else:
            self.native.start(order)

    def kill(self, task_id: str) -> None:
        self._for(task_id).kill(task_id)

    def pause(self, task_id: str) -> None:
        self._for(task_id).pause(task_id)

    def resume(self, task_id: str) -> None:
        self._for(task_id).resume(task_id)

    def restart(self, task_id: str) -> None:
        if self._for(task_id) is not self.containers:
            raise UnknownTask(f"task {task_id} is native: only a VPS can be restarted")
        self.containers.restart(task_id)

    def remove(self, task_id: str, force: bool) -> None:
        """Remove a VPS's container and snapshots (the journal may have forgotten it)."""
        self.containers.remove(task_id, force)

    def snapshot(self, task_id: str) -> str:
        if self._for(task_id) is not self.containers:
            raise UnknownTask(f"task {task_id} is native: only a VPS can be snapshotted")
        return self.containers.snapshot(task_id)

    def adopt(self, entries: list[Entry]) -> None:
        self.containers.adopt([e for e in entries if not e.order.native])
        native = [e for e in entries if e.order.native]
        if self.native is not None:
            self.native.adopt(native)
        else:
            for e in native:  # cannot be followed without the native backend
                self.containers.abandon(e.task_id, "native execution is off on this runner")

    def log_path(self, task_id: str, stream: str) -> Path:
        return self.containers.log_path(task_id, stream)
