"""``kawa files``: files inside a running task's container, confined to it.

Imports of the client stay inside the commands so ``kawa --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kawa.cli.arguments import TaskArg
from kawa.cli.output import CliError, plain, visible

if TYPE_CHECKING:
    from kawa.client.files import OnBytes, RemoteFiles

app = typer.Typer(
    help="Files inside a running task's container: ls, get, put, rm, mkdir, mv.",
    no_args_is_help=True,
)
PROGRESS_FROM = 1024 * 1024  # show a progress bar for transfers at least this large


@contextmanager
def _files() -> Iterator[RemoteFiles]:
    from kawa.cli.context import client
    from kawa.client.files import RemoteFiles

    with client() as c, RemoteFiles(c.url, c.token, ca_file=c.ca_file) as files:
        yield files


@contextmanager
def _progress(label: str, quiet: bool) -> Iterator[OnBytes | None]:
    """A rich progress bar for a transfer, shown once it is large (and on a terminal)."""
    from kawa.cli.output import err_console

    if quiet or not err_console.is_terminal:
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TransferSpeedColumn,
    )

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        job = bar.add_task(label, total=None, visible=False)

        def on_bytes(done: int, total: int | None) -> None:
            big = (total or done) >= PROGRESS_FROM
            bar.update(job, completed=done, total=total, visible=big)

        yield on_bytes


def _mode(mode: int, kind: str) -> str:
    letter = {"dir": "d", "link": "l", "file": "-"}.get(kind, "?")
    bits = "".join(ch if mode & (1 << (8 - i)) else "-" for i, ch in enumerate("rwxrwxrwx"))
    return letter + bits


@app.command("ls")
def ls(
    task_id: TaskArg,
    path: Annotated[str, typer.Argument(help="Absolute directory path.")] = "/",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List a directory: type and mode, size, modification time, name."""
    from datetime import datetime

    from kawa.cli.output import console, human_bytes, print_json

    with _files() as files:
        listing = files.list(task_id, path)
    if as_json:
        print_json(listing.model_dump(mode="json"))
        return
    for e in listing.entries:
        when = datetime.fromtimestamp(e.mtime).strftime("%Y-%m-%d %H:%M")
        name = e.name + ("/" if e.type == "dir" else "") + (f" -> {e.target}" if e.target else "")
        size = (human_bytes(e.size) if e.size else "0B") if e.type == "file" else "-"
        console.print(
            f"{_mode(e.mode, e.type)} {size:>10} {when} {visible(name)}",
            highlight=False,
            markup=False,
        )


@app.command("get")
def get(
    task_id: TaskArg,
    path: Annotated[str, typer.Argument(help="Absolute path of the file in the container.")],
    dest: Annotated[
        str | None,
        typer.Argument(
            help="Local file or directory (default: its name here; - for stdout)."
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Download a file from the container."""
    import sys

    with _files() as files:
        if dest == "-":
            files.download(task_id, path, sys.stdout.buffer)
            sys.stdout.buffer.flush()
            return
        target = Path(dest) if dest else Path(Path(path).name or "download")
        if target.is_dir():
            target = target / Path(path).name
        with _progress(f"get {plain(path)}", quiet) as on_bytes:
            size = files.download(task_id, path, target, on_bytes)
    print(f"{visible(path)} -> {visible(target)} ({size} bytes)")


@app.command("put")
def put(
    task_id: TaskArg,
    source: Annotated[Path, typer.Argument(help="Local file to upload.")],
    path: Annotated[str, typer.Argument(help="Absolute destination path in the container.")],
    parents: Annotated[
        bool, typer.Option("--parents", "-p", help="Create missing parent directories.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Upload a local file into the container (a path ending in / keeps its name)."""
    if not source.is_file():
        raise CliError(f"{source} is not a file")
    if path.endswith("/"):
        path += source.name
    with _files() as files, _progress(f"put {plain(source.name)}", quiet) as on_bytes:
        written = files.upload(task_id, source, path, parents, on_bytes)
    print(f"{visible(source)} -> {visible(written.path)} ({written.size} bytes)")


@app.command("rm")
def rm(
    task_id: TaskArg,
    paths: Annotated[list[str], typer.Argument(help="Absolute paths to delete.")],
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="Delete directories and their contents.")
    ] = False,
) -> None:
    """Delete files (and with -r, directories)."""
    with _files() as files:
        for p in paths:
            files.remove(task_id, p, recursive)
            print(f"removed {visible(p)}")


@app.command("mkdir")
def mkdir(
    task_id: TaskArg,
    paths: Annotated[list[str], typer.Argument(help="Absolute directory paths.")],
    parents: Annotated[
        bool, typer.Option("--parents", "-p", help="Create parents; no error if it exists.")
    ] = False,
) -> None:
    """Create directories."""
    with _files() as files:
        for p in paths:
            print(f"created {visible(files.mkdir(task_id, p, parents).path)}")


@app.command("mv")
def mv(
    task_id: TaskArg,
    source: Annotated[str, typer.Argument(help="Absolute path to rename.")],
    destination: Annotated[str, typer.Argument(help="Its new absolute path.")],
) -> None:
    """Rename (move) a file or directory."""
    with _files() as files:
        moved = files.move(task_id, source, destination)
    print(f"{visible(source)} -> {visible(moved.path)}")
