"""Listings that fit the screen: widths, cutting with …, relative times, -o."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console

from kawa.cli.output import Markup
from kawa.cli.tables import relative, render, widths


def lines_of(table: object, width: int) -> list[str]:
    console = Console(width=width, file=None, force_terminal=False, color_system=None)
    with console.capture() as captured:
        console.print(table, crop=False)
    return captured.get().rstrip("\n").split("\n")


def test_flexible_columns_give_way_first() -> None:
    assert widths([18, 40, 7], [6, 6, 6], 50, [False, True, False]) == [18, 21, 7]
    assert widths([18, 40, 7], [6, 6, 6], None, [False, True, False]) == [18, 40, 7]
    # nothing left to cut in the flexible ones: the others give way, never below floors
    assert sum(widths([30, 10, 30], [6, 6, 6], 40, [False, True, False])) + 4 <= 40


@pytest.mark.parametrize("width", [40, 80, 120])
def test_rows_never_wrap_and_long_cells_end_in_an_ellipsis(width: int) -> None:
    rows = [
        (str(10**17 + i), "n" * (5 * i), Markup("[red]failed[/red]"), "x \x1b[2J " * 30)
        for i in range(5)
    ]
    table = render(["ID", "NAME", "STATE", "COMMAND"], rows, width, ["NAME", "COMMAND"])
    lines = lines_of(table, 10_000)
    assert len(lines) == 1 + len(rows)
    assert all(len(line.rstrip()) <= width for line in lines), lines
    if width >= 80:  # room enough: ids stay whole, the flexible columns were cut
        assert all(line.split()[0] == str(10**17 + i) for i, line in enumerate(lines[1:]))
    assert all(line.rstrip().endswith("…") for line in lines[1:])
    assert "\x1b" not in "".join(lines) and "\\x1b" in lines[1]  # server text escaped


def test_relative_times() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert relative(now - timedelta(seconds=5), now) == "5s ago"
    assert relative(now - timedelta(minutes=2, seconds=5), now) == "2m ago"
    assert relative(now - timedelta(hours=3), now) == "3h ago"
    assert relative(now - timedelta(days=2), now) == "2d ago"
    assert relative(now + timedelta(seconds=3), now) == "in 3s"
    assert relative(None, now) == "never"
