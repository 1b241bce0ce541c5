"""``kawa connect ID --ide``: a file tree, an editor and a terminal in one Textual app.

Left: the container's directories (loaded lazily through the files API when a node is
expanded). Centre: the editor (syntax highlighting by extension; Ctrl-S saves through
the files API; binary files open read-only). Bottom: the task's terminal (the same
terminal stream as ``kawa connect``, rendered with pyte). Tab / Ctrl-arrows move the
focus between panes; Ctrl-Q quits.
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Static, TextArea, Tree

from kawa.client.errors import KawaError
from kawa.client.files import RemoteFiles
from kawa.client.streams import open_terminal
from kawa.mux.stream import SessionClosed, StreamError
from kawa.protocol.files import FileEntry, FileType

MAX_EDIT = 4 * 1024 * 1024
LANGUAGES = {
    ".py": "python", ".pyi": "python", ".sh": "bash", ".bash": "bash", ".css": "css",
    ".go": "go", ".html": "html", ".htm": "html", ".java": "java", ".js": "javascript",
    ".mjs": "javascript", ".json": "json", ".md": "markdown", ".rs": "rust", ".sql": "sql",
    ".toml": "toml", ".xml": "xml", ".yaml": "yaml", ".yml": "yaml",
}  # fmt: skip


def language_for(path: str) -> str | None:
    return LANGUAGES.get(posixpath.splitext(path)[1].lower())


def decode_text(data: bytes) -> str | None:
    """The file as text, or None if it is binary (NUL bytes, or not UTF-8)."""
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


class IdeApp(App[None]):
    TITLE = "kawa ide"
    CSS = """
    #tree { width: 32; border: round $secondary; }
    #tree:focus { border: round $accent; }
    #editor { height: 2fr; }
    #terminal { height: 1fr; }
    #status { height: 1; background: $panel; padding: 0 1; }
    """
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("ctrl+right", "app.focus_next", "Next pane", priority=True),
        Binding("ctrl+left", "app.focus_previous", "Prev pane", priority=True),
        Binding("tab", "app.focus_next", "Next pane", show=False),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(
        self, url: str, token: str, task: str, root: str = "/", ca_file: str | None = None
    ) -> None:
        super().__init__()
        self.url, self.token, self.task_ref, self.root_path = url, token, task, root
        self.ca_file = ca_file
        self.files = RemoteFiles(url, token, ca_file=ca_file)
        self.current: str | None = None
        self.read_only = False
        self._keys: asyncio.Queue[bytes] = asyncio.Queue()
        self._sizes: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
        self.terminal_done = asyncio.Event()
        self._loaded: set[int] = set()

    # -- layout ---------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        from kawa.tui.vt import TerminalPane

        tree: Tree[FileEntry | None] = Tree(self.root_path, data=None, id="tree")
        tree.show_root = True
        with Horizontal():
            yield tree
            with Vertical():
                editor = TextArea.code_editor("", id="editor", tab_behavior="focus")
                editor.border_title = "editor"
                yield editor
                yield TerminalPane(id="terminal")
        yield Static(f"task {self.task_ref}: select a file in the tree", id="status")
        yield Footer()

    @property
    def file_tree(self) -> Tree[FileEntry | None]:
        return self.query_one("#tree", Tree)

    @property
    def editor(self) -> TextArea:
        return self.query_one("#editor", TextArea)

    @property
    def terminal(self):  # type: ignore[no-untyped-def]
        from kawa.tui.vt import TerminalPane

        return self.query_one("#terminal", TerminalPane)

    def status(self, message: str) -> None:
        self.query_one("#status", Static).update(message)

    async def on_mount(self) -> None:
        pane = self.terminal
        pane.send = self._keys.put_nowait
        pane.on_size = lambda r, c: self._sizes.put_nowait((r, c))
        self.run_worker(self._terminal(), name="terminal", exit_on_error=False)
        self.file_tree.root.expand()
        await self._load(self.file_tree.root)
        self.file_tree.focus()

    async def on_unmount(self) -> None:
        self.files.close()

    # -- tree -----------------------------------------------------------------------
    async def _load(self, node) -> None:  # type: ignore[no-untyped-def]
        path = node.data.path if node.data is not None else self.root_path
        try:
            listing = await asyncio.to_thread(self.files.list, self.task_ref, path)
        except KawaError as exc:
            self.status(f"cannot list {path}: {exc.message}")
            return
        node.remove_children()
        for entry in listing.entries:
            if entry.type is FileType.DIR:
                node.add(entry.name + "/", data=entry, allow_expand=True)
            else:
                node.add_leaf(entry.name, data=entry)
        self._loaded.add(node.id)

    @on(Tree.NodeExpanded)
    async def expanded(self, event: Tree.NodeExpanded[FileEntry | None]) -> None:
        if event.node.id not in self._loaded:
            await self._load(event.node)

    @on(Tree.NodeSelected)
    async def selected(self, event: Tree.NodeSelected[FileEntry | None]) -> None:
        entry = event.node.data
        if entry is not None and entry.type is not FileType.DIR:
            await self.open_file(entry.path)

    # -- editor ---------------------------------------------------------------------
    async def open_file(self, path: str) -> None:
        try:
            entry = await asyncio.to_thread(self.files.stat, self.task_ref, path)
            if entry.size > MAX_EDIT:
                self._show(path, f"({entry.size} bytes: too large to edit here)", None, True)
                self.status(f"{path}: too large to open ({entry.size} bytes), read-only")
                return
            data = await asyncio.to_thread(self.files.read, self.task_ref, path)
        except KawaError as exc:
            self.status(f"cannot open {path}: {exc.message}")
            return
        text = decode_text(data)
        if text is None:
            shown = data.decode("utf-8", errors="replace").replace("\0", "\N{SYMBOL FOR NULL}")
            self._show(path, shown, None, True)
            self.status(f"{path}: binary file ({len(data)} bytes), opened read-only")
            self.notify(f"{path} is a binary file: read-only", severity="warning")
            return
        self._show(path, text, language_for(path), False)
        self.status(f"{path} ({len(data)} bytes) - Ctrl-S saves")

    def _show(self, path: str, text: str, language: str | None, read_only: bool) -> None:
        editor = self.editor
        editor.language = language
        editor.load_text(text)
        editor.read_only = read_only
        editor.border_title = path + ("  [read-only]" if read_only else "")
        self.current, self.read_only = path, read_only

    async def action_save(self) -> None:
        if self.current is None:
            self.status("nothing to save: open a file first")
            return
        if self.read_only:
            self.status(f"{self.current} is read-only")
            return
        data = self.editor.text.encode()
        try:
            written = await asyncio.to_thread(self.files.write, self.task_ref, self.current, data)
        except KawaError as exc:
            self.status(f"cannot save {self.current}: {exc.message}")
            return
        self.status(f"saved {written.path} ({written.size} bytes)")

    # -- terminal -------------------------------------------------------------------
    async def _terminal(self) -> None:
        pane = self.terminal
        rows, cols = pane.screen_.lines, pane.screen_.columns
        try:
            async with open_terminal(
                self.url, self.token, self.task_ref, rows=rows, cols=cols, ca_file=self.ca_file
            ) as stream:
                if (rows, cols) != (pane.screen_.lines, pane.screen_.columns):
                    await stream.resize(pane.screen_.lines, pane.screen_.columns)

                async def keys() -> None:
                    while True:
                        await stream.write(await self._keys.get())

                async def sizes() -> None:
                    while True:
                        await stream.resize(*await self._sizes.get())

                helpers = [asyncio.create_task(keys()), asyncio.create_task(sizes())]
                try:
                    while data := await stream.read():
                        pane.feed(data)
                finally:
                    for h in helpers:
                        h.cancel()
                    await asyncio.gather(*helpers, return_exceptions=True)
                code = stream.exit_code
                pane.feed(f"\r\n[the terminal ended, exit code {code}]\r\n".encode())
        except (KawaError, StreamError, SessionClosed, OSError) as exc:
            pane.feed(f"\r\n[terminal: {exc}]\r\n".encode())
        finally:
            self.terminal_done.set()


def run_ide(url: str, token: str, task: str, root: str = "/", ca_file: str | None = None) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        IdeApp(url, token, task, root, ca_file).run()
