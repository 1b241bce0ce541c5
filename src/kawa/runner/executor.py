"""The interface every execution backend implements (Docker now, native later)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from kawa.protocol.runner_api import ExitKind, RunTask
from kawa.runner.journal import Entry

OnEnd = Callable[[str, ExitKind, "int | None", "str | None"], None]
"""Called (from any thread) once a task has ended and its ending is journaled."""


class StartError(Exception):
    """The task could not be started; the message says why."""


class UnknownTask(Exception):
    """The runner has no such live task."""


class Executor(Protocol):
    def start(self, order: RunTask) -> None: ...
    def kill(self, task_id: str) -> None: ...
    def pause(self, task_id: str) -> None: ...
    def resume(self, task_id: str) -> None: ...
    def adopt(self, entries: list[Entry]) -> None: ...
    def log_path(self, task_id: str, stream: str) -> Path: ...
