"""What ``kawa run`` writes besides the task's bytes, kept to the standard library so
the quick path (:mod:`kawa.cli.quick_tasks`) shares it with the full one."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

STARTED = frozenset({"running", "paused"})
UNSTARTED = frozenset({"pending", "assigning"})
"""``kawa.core.task_states.AWAITING_START`` by name (that module is costly to import)."""
DONE = frozenset(
    {"completed", "failed", "killed", "oom_killed", "timed_out", "removed", "lost", "stopped"}
)
"""``kawa.core.task_states.WAIT_DONE_STATES`` by name: the task will not move on by itself."""
LOST_CONTACT = 1
"""Exit code when the host cannot be reached mid-stream (the task keeps running)."""
BROKEN_PIPE = 141


def sink(fd: int) -> Callable[[bytes], None]:
    """A writer of whole byte strings to ``fd`` (a short write is continued)."""

    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    return write


class Status:
    """The ``waiting: REASON`` line on standard error, only when it is a terminal."""

    def __init__(self) -> None:
        self.on = sys.stderr.isatty()
        self.shown = ""

    def show(self, text: str) -> None:
        if self.on and text != self.shown:
            sys.stderr.write(f"\r\x1b[K{text}")
            sys.stderr.flush()
            self.shown = text

    def clear(self) -> None:
        self.show("")


def waiting_line(reason: str, queued: int, total: int) -> str:
    """``waiting: REASON`` (with ``(N tasks)`` when the run has several); ``reason`` is
    already safe to print."""
    more = f" ({queued} tasks)" if total > 1 else ""
    return f"waiting: {reason}{more}"
