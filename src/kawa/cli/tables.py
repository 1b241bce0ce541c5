"""Listings that fit: one row per item, never wrapped.

On a terminal (or wherever ``COLUMNS`` says how wide the screen is) a listing is cut to
the width: the widest cells give way first, and a cut cell ends in ``…``. Piped
elsewhere, cells are whole. ``-o wide`` never cuts, ``-o json`` prints the items as the
host sent them, ``-o ids`` one id per line (for ``xargs kawa task kill``). States are
coloured on a terminal and plain text when piped (rich decides by the output).
Everything from the host is shown through :func:`~kawa.cli.output.cell` (control
characters escaped), as every table of the CLI is.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kawa.cli.output import print_json

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

FORMATS = ("wide", "json", "ids")
GAP = 2
MIN_CUT = 6
"""A cut column keeps at least this many characters (its header's, if longer)."""


def _check_format(value: str | None) -> str | None:
    if value is not None and value not in FORMATS:
        raise typer.BadParameter(f"{value!r}: use one of {', '.join(FORMATS)}")
    return value


OutputOpt = Annotated[
    str | None,
    typer.Option(
        "--output", "-o", help="wide (no cutting), json, or ids (one per line).",
        callback=_check_format, metavar="wide|json|ids",
    ),
]  # fmt: skip


def relative(at: datetime | None, now: datetime | None = None) -> str:
    """``at`` as ``2m ago`` (``in 3s`` when ahead, ``never`` when None)."""
    if at is None:
        return "never"
    now = now or datetime.now(UTC)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    seconds = int((now - at).total_seconds())
    ahead, seconds = seconds < 0, abs(seconds)
    text = f"{seconds}s"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            text = f"{seconds // size}{unit}"
            break
    return f"in {text}" if ahead else f"{text} ago"


def screen_width() -> int | None:
    """How wide the listing may be: the terminal's, or ``COLUMNS``; None when piped."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if sys.stdout.isatty():
        return os.get_terminal_size(sys.stdout.fileno()).columns
    return None


def widths(
    natural: Sequence[int], floors: Sequence[int], width: int | None, flex: Sequence[bool]
) -> list[int]:
    """Column widths no wider than ``natural`` whose sum (with gaps) fits ``width``: the
    ``flex`` columns give way first, the widest of them first, none below its floor;
    then the others, the same way."""
    out = list(natural)
    if width is None:
        return out
    excess = sum(out) + GAP * (len(out) - 1) - width
    for group in ([i for i, f in enumerate(flex) if f], range(len(out))):
        while excess > 0:
            shrinkable = [i for i in group if out[i] > floors[i]]
            if not shrinkable:
                break
            widest = max(shrinkable, key=lambda i: out[i])
            others = [out[i] for i in shrinkable if i != widest]
            target = max(max(others, default=0), floors[widest], out[widest] - excess)
            target = min(target, out[widest] - 1)
            excess -= out[widest] - target
            out[widest] = target
    return out


def render(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    width: int | None,
    flex: Sequence[str] = (),
) -> Table:
    """A rich table of ``rows`` whose columns fit ``width`` (None: whole cells); the
    ``flex`` columns are cut first."""
    from rich.table import Table

    from kawa.cli.output import cell

    cells = [[cell(v) for v in row] for row in rows]
    natural = [max([len(c)] + [r[i].cell_len for r in cells]) for i, c in enumerate(columns)]
    floors = [min(n, max(MIN_CUT, len(c))) for n, c in zip(natural, columns, strict=True)]
    sized = widths(natural, floors, width, [c in flex for c in columns])
    t = Table(header_style="bold", box=None, pad_edge=False, padding=(0, GAP // 2))
    for i, name in enumerate(columns):
        t.add_column(name, no_wrap=True, overflow="ellipsis", width=sized[i])
    for row in cells:
        t.add_row(*row)
    return t


def _console(width: int | None) -> Console:
    from kawa.cli.output import console

    if width is None:  # piped: lines as long as their cells
        from rich.console import Console

        return Console(width=10**6, force_terminal=console.is_terminal, no_color=console.no_color)
    return console


def show(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    wide: bool = False,
    flex: Sequence[str] = (),
) -> None:
    """Print a listing (``wide``: cells whole, however wide), lines without trailing
    blanks."""
    width = None if wide else screen_width()
    out = _console(width)
    with out.capture() as captured:
        out.print(render(columns, rows, width, flex), crop=False)
    text = "\n".join(line.rstrip(" ") for line in captured.get().split("\n"))
    sys.stdout.write(text)
    sys.stdout.flush()


def listing(
    items: Sequence[Any],
    output: str | None,
    json: bool,
    columns: Sequence[str],
    row: Callable[[Any], Sequence[Any]],
    ident: Callable[[Any], str],
    flex: Sequence[str] = (),
    wide_only: Sequence[str] = (),
) -> None:
    """``items`` as ``-o``/``--json`` ask: JSON, ids, or a table of ``row(item)`` (the
    ``wide_only`` columns with ``-o wide`` only)."""
    if json or output == "json":
        print_json(list(items))
    elif output == "ids":
        sys.stdout.write("".join(f"{ident(i)}\n" for i in items))
    else:
        wide = output == "wide"
        shown, rows = select(columns, [row(i) for i in items], wide_only, wide)
        show(shown, rows, wide=wide, flex=flex)


def select(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], wide_only: Sequence[str], wide: bool
) -> tuple[list[str], list[list[Any]]]:
    """The columns (and their cells) shown: all with ``wide``, else all but ``wide_only``."""
    keep = [i for i, c in enumerate(columns) if wide or c not in wide_only]
    return [columns[i] for i in keep], [[r[i] for i in keep] for r in rows]
