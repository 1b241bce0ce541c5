"""A terminal pane: the terminal stream's bytes rendered by the pyte VT emulator, and
keystrokes sent back as the bytes a terminal would send."""

from __future__ import annotations

from collections.abc import Callable

import pyte
from rich.style import Style
from rich.text import Text
from textual import events
from textual.widget import Widget

_KEYS = {
    "enter": b"\r",
    "backspace": b"\x7f",
    "escape": b"\x1b",
    "up": b"\x1b[A",
    "down": b"\x1b[B",
    "right": b"\x1b[C",
    "left": b"\x1b[D",
    "home": b"\x1b[H",
    "end": b"\x1b[F",
    "delete": b"\x1b[3~",
    "pageup": b"\x1b[5~",
    "pagedown": b"\x1b[6~",
}
_PASS_ON = {"tab", "shift+tab", "ctrl+q", "ctrl+s", "ctrl+left", "ctrl+right"}
"""Keys the IDE keeps for itself (focus, save, quit)."""


def key_bytes(key: str, character: str | None) -> bytes | None:
    """What a terminal sends for a key, or None for keys it does not send."""
    if key in _PASS_ON:
        return None
    if key in _KEYS:
        return _KEYS[key]
    if character:
        return character.encode()
    return None


class TerminalPane(Widget, can_focus=True):
    """Renders a pyte screen; ``send`` receives the bytes of typed keys."""

    DEFAULT_CSS = """
    TerminalPane { border: round $secondary; padding: 0; }
    TerminalPane:focus { border: round $accent; }
    """

    def __init__(self, rows: int = 24, cols: int = 80, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.screen_ = pyte.Screen(cols, rows)
        self.stream_ = pyte.ByteStream(self.screen_)
        self.send: Callable[[bytes], None] | None = None
        self.on_size: Callable[[int, int], None] | None = None
        self.border_title = "terminal"

    def feed(self, data: bytes) -> None:
        self.stream_.feed(data)
        self.refresh()

    def text(self) -> str:
        """The screen's text, one line per row (for tests and copying)."""
        return "\n".join(line.rstrip() for line in self.screen_.display)

    def render(self) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        cursor = self.screen_.cursor
        for y, line in enumerate(self.screen_.display):
            if y:
                out.append("\n")
            if self.has_focus and y == cursor.y and not cursor.hidden:
                x = min(cursor.x, len(line))
                padded = line + " "
                out.append(padded[:x])
                out.append(padded[x], Style(reverse=True))
                out.append(padded[x + 1 :].rstrip("\n"))
            else:
                out.append(line)
        return out

    def on_resize(self, event: events.Resize) -> None:
        cols, rows = max(event.size.width, 2), max(event.size.height, 2)
        if (rows, cols) != (self.screen_.lines, self.screen_.columns):
            self.screen_.resize(rows, cols)
            if self.on_size is not None:
                self.on_size(rows, cols)

    def on_key(self, event: events.Key) -> None:
        data = key_bytes(event.key, event.character)
        if data is None or self.send is None:
            return
        event.stop()
        event.prevent_default()
        self.send(data)

    def on_paste(self, event: events.Paste) -> None:
        if self.send is not None:
            self.send(event.text.encode())
