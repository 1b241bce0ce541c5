"""``kawa connect ID --ide`` driven by Textual's pilot against a real cluster: open a
file from the tree, edit, save (the container's file changes), a binary file opens
read-only, and the terminal pane shows a typed command's output."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from textual.pilot import Pilot

from kawa.client.files import RemoteFiles
from kawa.protocol.tasks import TaskAction, TaskSpec
from kawa.tui.ide import IdeApp
from tests.integration.cluster import Cluster, eventually

SOURCE = b"print('hi')\n"
BINARY = b"\x7fELF\x00\x01\x02\xff\xfe binary"


@pytest.fixture(scope="module")
def task(cluster: Cluster) -> Iterator[str]:
    with cluster.client() as c:
        [t] = c.submit(TaskSpec(command=["sleep", "300"], targets=["node2"])).tasks
        eventually(lambda: c.task(t.id).state == "running", what="task running")
        with RemoteFiles(cluster.url, cluster.token) as files:
            files.write(t.id, "/tmp/ide/hello.py", SOURCE, parents=True)
            files.write(t.id, "/tmp/ide/blob.bin", BINARY)
        yield t.id
        c.act(t.id, TaskAction.KILL)


async def until(
    pilot: Pilot[None], check: Callable[[], object], what: str, timeout: float = 20
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.05)


async def open_from_tree(pilot: Pilot[None], app: IdeApp, name: str) -> None:
    tree = app.file_tree
    await until(pilot, lambda: len(tree.root.children) >= 2, "the tree to load")
    [node] = [n for n in tree.root.children if str(n.label) == name]
    tree.focus()
    tree.move_cursor(node)
    await pilot.press("enter")
    await until(pilot, lambda: app.current == f"/tmp/ide/{name}", f"{name} to open")


async def test_open_edit_save_changes_the_container(cluster: Cluster, task: str) -> None:
    app = IdeApp(cluster.url, cluster.token, task, root="/tmp/ide")
    async with app.run_test(size=(140, 45)) as pilot:
        await open_from_tree(pilot, app, "hello.py")
        editor = app.editor
        assert editor.text == SOURCE.decode() and not editor.read_only
        assert editor.language == "python"
        editor.focus()
        editor.move_cursor((0, 0))
        await pilot.press("z", "z", "enter")
        assert editor.text == "zz\n" + SOURCE.decode()
        await pilot.press("ctrl+s")
        with RemoteFiles(cluster.url, cluster.token) as files:
            await until(
                pilot,
                lambda: files.read(task, "/tmp/ide/hello.py") == b"zz\n" + SOURCE,
                "the saved file in the container",
            )
        await pilot.press("ctrl+q")


async def test_binary_file_opens_read_only(cluster: Cluster, task: str) -> None:
    app = IdeApp(cluster.url, cluster.token, task, root="/tmp/ide")
    async with app.run_test(size=(140, 45)) as pilot:
        await open_from_tree(pilot, app, "blob.bin")
        assert app.editor.read_only and app.read_only
        assert "binary file" in str(app.query_one("#status").render())
        app.editor.focus()
        await pilot.press("x", "ctrl+s")
        assert "read-only" in str(app.query_one("#status").render())
        with RemoteFiles(cluster.url, cluster.token) as files:
            assert files.read(task, "/tmp/ide/blob.bin") == BINARY


async def test_terminal_pane_runs_typed_commands(cluster: Cluster, task: str) -> None:
    app = IdeApp(cluster.url, cluster.token, task, root="/tmp/ide")
    async with app.run_test(size=(140, 45)) as pilot:
        pane = app.terminal
        await until(pilot, lambda: pane.text().strip(), "a shell prompt")
        pane.focus()
        await pilot.press(*"echo", "space", *"ide", "minus", *"ok", "enter")
        await until(
            pilot,
            lambda: "ide-ok" in [line.strip() for line in pane.text().splitlines()],
            "the command's output in the terminal pane",
        )
        assert "echo ide-ok" in pane.text()
        # Ctrl-arrows move the focus between panes
        await pilot.press("ctrl+right")
        assert app.focused is not pane
