"""The interface every execution backend implements (Docker and native), and how a
task's ending is classified and recorded by both."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from kawa.core.reports import ExitKind, classify_ending
from kawa.protocol.runner_api import RunTask
from kawa.runner.journal import Entry, Journal

if TYPE_CHECKING:
    from docker import DockerClient

OnEnd = Callable[[str, ExitKind, "int | None", "str | None"], None]
"""Called (from any thread) once a task has ended and its ending is journaled."""


class StartError(Exception):
    """The task could not be started; the message says why."""


class UnknownTask(Exception):
    """The runner has no such live task."""


class Executor(Protocol):
    """A backend that runs tasks: Docker containers or native process groups."""

    def start(self, order: RunTask) -> None: ...
    def kill(self, task_id: str) -> None: ...
    def pause(self, task_id: str) -> None: ...
    def resume(self, task_id: str) -> None: ...
    def adopt(self, entries: list[Entry]) -> None: ...
    def log_path(self, task_id: str, stream: str) -> Path: ...


class ContainerExecutor(Executor, Protocol):
    """An executor that also keeps VPS containers (restart, snapshot, remove), can
    settle a task it cannot follow, and lends its Docker client to terminals and files."""

    @property
    def docker(self) -> DockerClient: ...

    def restart(self, task_id: str) -> None: ...
    def snapshot(self, task_id: str) -> str: ...
    def remove(self, task_id: str, force: bool) -> None: ...
    def abandon(self, task_id: str, reason: str) -> None: ...


_RUNTIME_EXEC = re.compile(r"exec [^\n]+: [^\n]+\n?")
"""What the container runtime prints when it cannot execute the command, e.g.
``exec /usr/bin/echo: argument list too long`` or ``exec /x: exec format error``."""
_TAIL = 4096


def _tail(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - _TAIL))
            return f.read()
    except OSError:
        return b""


def launch_failure(code: int | None, stdout: Path, stderr: Path) -> str | None:
    """Why a task that exited with ``code`` could not run its command, when its output
    says so: the runtime's own ``exec PATH: REASON`` line (exit code 1, nothing else
    printed), or for exit codes 126 and 127 (cannot execute, not found) the last line
    of its stderr. None when the output tells nothing of the kind."""
    if code not in (1, 126, 127):
        return None
    err = _tail(stderr).decode(errors="replace")
    if code == 1:
        if _RUNTIME_EXEC.fullmatch(err) and not _tail(stdout):
            return f"the command could not be executed: {err.strip()}"
        return None
    lines = [line.strip() for line in err.splitlines() if line.strip()]
    what = "could not be executed" if code == 126 else "was not found"
    if not lines:
        return None
    return f"the command {what} (exit code {code}): {lines[-1][:500]}"


def record_ending(
    journal: Journal,
    on_end: OnEnd,
    task_id: str,
    code: int | None,
    oom: bool,
    error: str | None,
    journaled: Callable[[], None] | None = None,
) -> None:
    """Journal a task's ending once and tell ``on_end`` (a second call changes nothing).

    ``journaled`` runs once the journal holds the ending and before ``on_end``: what
    it clears is gone by the time anyone hears that the task ended."""
    entry = journal.get(task_id)
    if entry is None:
        return
    kind, error = classify_ending(
        code,
        error,
        oom=oom,
        kill_requested=entry.kill_requested,
        timed_out=entry.timed_out,
        timeout=entry.order.timeout,
    )
    ended = journal.end(task_id, kind, code, error)
    if journaled is not None:
        journaled()
    if ended:
        on_end(task_id, kind, code, error)
