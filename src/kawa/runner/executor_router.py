"""One executor in front of the backends it is given: containers, and native when allowed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kawa.protocol.runner_api import RunTask
from kawa.runner.executor import ContainerExecutor, Executor, StartError, UnknownTask
from kawa.runner.journal import Entry, Journal

if TYPE_CHECKING:
    from docker import DockerClient

NATIVE_OFF = "this runner does not accept native tasks (allow_native = false)"


class ExecutorRouter:
    """Sends each task to the backend its order names and keeps both adopted."""

    def __init__(
        self,
        journal: Journal,
        containers: ContainerExecutor,
        native: Executor | None,
        native_refusal: str = NATIVE_OFF,
    ) -> None:
        self.journal = journal
        self.containers = containers
        self.native = native
        self.native_refusal = native_refusal

    @property
    def docker(self) -> DockerClient:
        """The Docker client (terminals and files reach containers through it)."""
        return self.containers.docker

    def _for(self, task_id: str) -> Executor:
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

    def abandon(self, task_id: str, reason: str) -> None:
        """Settle a journaled task no backend can follow (reported as vanished)."""
        self.containers.abandon(task_id, reason)

    def adopt(self, entries: list[Entry]) -> None:
        self.containers.adopt([e for e in entries if not e.order.native])
        native = [e for e in entries if e.order.native]
        if self.native is not None:
            self.native.adopt(native)
        else:
            for e in native:  # cannot be followed without the native backend
                self.abandon(e.task_id, "native execution is off on this runner")

    def log_path(self, task_id: str, stream: str) -> Path:
        return self.containers.log_path(task_id, stream)
