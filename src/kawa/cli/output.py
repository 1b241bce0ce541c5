"""Printing: rich tables for people, JSON for scripts, one-line errors.

Everything printed for people that came from the host (names, commands, errors, paths)
goes through :func:`visible` (control characters shown as escapes, so no server string
can move the cursor, recolour or retitle the terminal) and is never read as rich markup:
tables take plain values (:class:`Markup` marks the CLI's own styling), and strings put
into a markup line go through :func:`plain`. JSON output is exact, and task output
(``kawa task logs``, ``kawa container shell``) is the program's own bytes, passed
through as they are.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence

TYPE_CHECKING = False  # typing is not imported at run time: the quick CLI path skips it
if TYPE_CHECKING:
    from typing import Any

    from rich.console import Console
    from rich.text import Text

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


# C0 and C1 controls, DEL, and the format characters that reorder or hide text
# (bidirectional overrides and isolates, line and paragraph separators).
_SHOWN = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_UNSAFE = frozenset(
    [
        *range(0x20),
        *range(0x7F, 0xA0),
        0x061C,
        0x200E,
        0x200F,
        0x2028,
        0x2029,
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    ]
)


def _escape_char(c: str) -> str:
    if ord(c) not in _UNSAFE:
        return c
    if c in _SHOWN:
        return _SHOWN[c]
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


def visible(value: object) -> str:
    """``value`` as text that is safe to print on a terminal: control characters (ESC,
    BEL, newline, …) and text-reordering marks appear as Python-style escapes
    (``\\x1b``, ``\\n``, ``\\u202e``); printable Unicode is kept as it is."""
    text = "" if value is None else str(value)
    if all(ord(c) not in _UNSAFE for c in text):
        return text
    return "".join(_escape_char(c) for c in text)


def plain(value: object) -> str:
    """``value`` made :func:`visible` and escaped for use inside a rich markup string."""
    from rich.markup import escape

    return escape(visible(value))


class Markup(str):
    """The CLI's own rich markup (``[red]failed[/red]``): a table shows it styled, where
    any other value is shown as plain, :func:`visible` text."""


def print_json(data: Any) -> None:
    if hasattr(data, "model_dump"):
        data = data.model_dump(mode="json")
    elif isinstance(data, list):
        data = [d.model_dump(mode="json") if hasattr(d, "model_dump") else d for d in data]
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def cell(value: object) -> Text:
    """A table cell: :class:`Markup` styled, anything else as plain :func:`visible` text."""
    from rich.text import Text

    if isinstance(value, Markup):
        return Text.from_markup(value)
    return Text(visible(value))


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A table of plain values; ``title`` is markup (escape server values with
    :func:`plain`)."""
    from rich.table import Table

    t = Table(title=title, header_style="bold", box=None, pad_edge=False)
    for i, c in enumerate(columns):
        t.add_column(c, overflow="fold", no_wrap=i == 0)
    for row in rows:
        t.add_row(*[cell(v) for v in row])
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


def styled(state: str) -> Markup:
    """A state name in its colour, as :class:`Markup`."""
    style = STATE_STYLE.get(state)
    shown = plain(state)
    return Markup(f"[{style}]{shown}[/{style}]" if style else shown)
