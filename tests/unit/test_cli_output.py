"""What the CLI prints from the host is terminal-safe (kawa.cli.output): control characters
are shown as escapes, rich markup in a server string is shown, not applied."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from kawa.cli import output


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain name", "plain name"),
        ("\x1b[31mRED\x07\nline2", "\\x1b[31mRED\\x07\\nline2"),
        ("tab\there\r", "tab\\there\\r"),
        ("nul\x00del\x7fc1\x9b", "nul\\x00del\\x7fc1\\x9b"),
        ("abc\u202edcba", "abc\\u202edcba"),
        ("line\u2028sep", "line\\u2028sep"),
        ("日本語 é ✓ 🚀", "日本語 é ✓ 🚀"),
        ("[bold]x[/]", "[bold]x[/]"),
        (None, ""),
        (42, "42"),
    ],
)
def test_visible(raw: object, shown: str) -> None:
    assert output.visible(raw) == shown


def printed(monkeypatch: pytest.MonkeyPatch, draw: object) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=200, color_system=None)
    monkeypatch.setitem(output._consoles, "console", console)
    assert callable(draw)
    draw()
    return buffer.getvalue()


def test_table_cells_are_plain_text(monkeypatch: pytest.MonkeyPatch) -> None:
    text = printed(
        monkeypatch,
        lambda: output.table(
            None,
            ["NAME", "STATE"],
            [("[bold]x[/] [/]", output.styled("failed")), ("a\x1bb\nc", "[red]no[/red]")],
        ),
    )
    assert "[bold]x[/] [/]" in text
    assert "a\\x1bb\\nc" in text
    assert "[red]no[/red]" in text, "markup in a plain cell must be shown as typed"
    assert "failed" in text and "[red]failed" not in text, "the CLI's own markup is applied"
    assert "\x1b" not in text


def test_plain_escapes_markup_and_controls(monkeypatch: pytest.MonkeyPatch) -> None:
    value = "[/]\x07[bold]"
    text = printed(monkeypatch, lambda: output.console.print(f"error: {output.plain(value)}"))
    assert text == "error: [/]\\x07[bold]\n"
