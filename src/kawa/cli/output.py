"""Printing: rich tables for people, JSON for scripts, one-line errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    console: Console
    err_console: Console

_consoles: dict[str, Console] = {}


def __getattr__(name: str) -> Any:
    """``console`` and ``err_console`` are made on first use, so commands that never
    print through rich (``kawa ssh``, ``kawa proxy``) do not import it."""
    if name not in ("console", "err_console"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in _consoles:
        from rich.console import Console

        _consoles[name] = Console(stderr=name == "err_console")
    return _consoles[name]


class CliError(Exception):
    """A user-facing failure: printed as ``error: <message>``, exit code ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message, self.code = message, code


def print_json(data: Any) -> None:
    if hasattr(data, "model_dump"):
        data = data.model_dump(mode="json")
    elif isinstance(data, list):
        data = [d.model_dump(mode="json") if hasattr(d, "model_dump") else d for d in data]
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    from rich.table import Table

    t = Table(title=title, header_style="bold", box=None, pad_edge=False)
    for i, c in enumerate(columns):
        t.add_column(c, overflow="fold", no_wrap=i == 0)
    for row in rows:
        t.add_row(*["" if v is None else str(v) for v in row])
    __getattr__("console").print(t)


def human_bytes(n: int | None) -> str:
    if not n:
        return "-"
    for unit, size in (("T", 10**12), ("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= size:
            return f"{n / size:.1f}{unit}".replace(".0" + unit, unit)
    return f"{n}B"


STATE_STYLE = {
    "completed": "green",
    "running": "cyan",
    "pending": "yellow",
    "assigning": "yellow",
    "paused": "magenta",
    "failed": "red",
    "killed": "red",
    "oom_killed": "red",
    "timed_out": "red",
    "lost": "red",
    "stopped": "dim",
    "removed": "dim",
    "online": "green",
    "offline": "red",
    "draining": "yellow",
}


def styled(state: str) -> str:
    style = STATE_STYLE.get(state)
    return f"[{style}]{state}[/{style}]" if style else state
