"""The interface every execution backend implements (Docker and native), and how a
task's ending is classified and recorded by both."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from kawa.protocol.runner_api import ExitKind, RunTask
from kawa.runner.journal import Entry, Journal

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


def classify_ending(
    entry: Entry, code: int | None, oom: bool, error: str | None
) -> tuple[ExitKind, str | None]:
    """How a task ended, by precedence: timeout, requested kill, OOM, vanished, exit."""
    if entry.timed_out:
        return ExitKind.TIMED_OUT, f"timed out after {entry.order.timeout:g}s"
    if entry.kill_requested:
        return ExitKind.KILLED, error
    if oom:
        return (
            ExitKind.OOM_KILLED,
            error or "killed by the kernel's OOM killer (memory limit reached)",
        )
    if code is None:
        return ExitKind.VANISHED, error
    return ExitKind.EXITED, error


def record_ending(
    journal: Journal,
    on_end: OnEnd,
    task_id: str,
    code: int | None,
    oom: bool,
    error: str | None,
) -> None:
    """Journal a task's ending once and tell ``on_end`` (a second call changes nothing)."""
    entry = journal.get(task_id)
    if entry is None:
        return
    kind, error = classify_ending(entry, code, oom, error)
    if journal.end(task_id, kind, code, error):
        on_end(task_id, kind, code, error)
