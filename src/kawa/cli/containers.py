"""``kawa container …``: prepare environments on the host, package and move them."""

from __future__ import annotations

import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kawa.cli.arguments import EnvironmentArg as NameArg
from kawa.cli.arguments import environment_name
from kawa.cli.context import client
from kawa.cli.output import (
    CliError,
    console,
    err_console,
    human_bytes,
    plain,
    print_json,
)
from kawa.cli.tables import OutputOpt

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from kawa.protocol.environments import EnvironmentVersionView, Progress, WorkspaceView

app = typer.Typer(
    help="Container environments: create a workspace on the host, shell into it, package "
    "it into a versioned tarball that every node loads; import, export, bootstrap.",
    no_args_is_help=True,
)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@contextmanager
def _bar(
    title: str,
) -> Iterator[tuple[Callable[[Progress], None], Callable[[int, int | None], None]]]:
    """A progress bar on stderr; yields (server-phase callback, byte-count callback)."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.progress import Progress as Bar

    columns = (
        TextColumn("{task.description:<12}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Bar(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task(title, total=None)

        def phase(p: Progress) -> None:
            bar.update(task, description=plain(p.phase), completed=p.done, total=p.total)

        def moved(done: int, total: int | None) -> None:
            bar.update(task, description=title, completed=done, total=total)

        yield phase, moved


def _done(v: EnvironmentVersionView, what: str) -> None:
    console.print(
        f"{what} [bold]{plain(v.name)}@{plain(v.version)}[/bold]: "
        f"{human_bytes(v.size)}, {plain(v.digest)}",
        highlight=False,
    )


def _workspace_line(w: WorkspaceView) -> None:
    console.print(
        f"workspace [bold]{plain(w.name)}[/bold]: {plain(w.state)} ({plain(w.image)})",
        highlight=False,
    )


@app.command()
def create(
    name: NameArg,
    image: Annotated[
        str | None, typer.Option("--from", help="Local image (default: the host's default).")
    ] = None,
) -> None:
    """Create a workspace container on the host from IMAGE."""
    with client() as c:
        _workspace_line(c.create_workspace(name, image))


@app.command("list")
def list_workspaces(json: JsonOpt = False, output: OutputOpt = None) -> None:
    """Workspaces on the host and their state."""
    from kawa.cli.tables import listing, relative

    with client() as c:
        found = c.workspaces()
    listing(
        found,
        output,
        json,
        ["NAME", "STATE", "IMAGE", "CONTAINER", "CREATED"],
        lambda w: (
            w.name,
            w.state + (" (packaging)" if w.packaging else ""),
            w.image,
            w.container_id,
            relative(w.created_at) if w.created_at else None,
        ),
        lambda w: w.name,
        flex=["IMAGE", "CONTAINER"],
    )


@app.command()
def start(name: NameArg) -> None:
    """Start a stopped workspace."""
    with client() as c:
        _workspace_line(c.start_workspace(name))


@app.command()
def stop(name: NameArg) -> None:
    """Stop a workspace (its files stay)."""
    with client() as c:
        _workspace_line(c.stop_workspace(name))


@app.command()
def delete(
    name: NameArg,
    force: Annotated[bool, typer.Option(help="Even with shells open in it.")] = False,
) -> None:
    """Delete a workspace; its packaged tarballs stay."""
    with client() as c:
        c.delete_workspace(name, force)
    console.print(f"workspace {plain(name)} deleted (its tarballs stay)", highlight=False)


@app.command()
def package(name: NameArg, json: JsonOpt = False) -> None:
    """Commit a workspace into a new version (tarball + digest); keeps the newest K."""
    with client() as c, _bar("packaging") as (phase, _):
        version = c.package(name, phase)
    print_json(version) if json else _done(version, "packaged")


@app.command()
def tarballs(
    name: Annotated[
        str | None, typer.Argument(help="Only this environment.", callback=environment_name)
    ] = None,
    json: JsonOpt = False,
    output: OutputOpt = None,
) -> None:
    """Packaged versions: sizes, digests, dates (newest marked *)."""
    from kawa.cli.tables import listing, relative

    with client() as c:
        found = c.tarballs(name)
    listing(
        found,
        output,
        json,
        ["NAME", "VERSION", "SIZE", "DIGEST", "CREATED", ""],
        lambda v: (
            v.name,
            v.version,
            human_bytes(v.size),
            v.digest[:19],
            relative(v.created_at),
            "*" if v.newest else "",
        ),
        lambda v: f"{v.name}:{v.version}",
        flex=["NAME", "DIGEST"],
    )


@app.command("import")
def import_tarball(
    file: Annotated[Path, typer.Argument(help="A `docker save` archive or a rootfs tar.")],
    name: Annotated[
        str | None,
        typer.Option(help="Environment name (default: from FILE).", callback=environment_name),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Import a tarball as a new version of an environment."""
    if not file.is_file():
        raise CliError(f"no such file: {file}", 2)
    target = name or re.sub(r"-\d{8}T\d{6}Z(-\d+)?$", "", file.name.split(".", 1)[0]).lower()
    with client() as c, _bar("uploading") as (phase, moved):
        version = c.import_tarball(target, file, moved, phase)
    print_json(version) if json else _done(version, "imported")


@app.command()
def export(
    name: NameArg,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write.")] = None,
    version: Annotated[str | None, typer.Option(help="Version (default: the newest).")] = None,
) -> None:
    """Download a version's tarball (resumes an interrupted download)."""
    dest = output or Path(f"{name}.tar")
    with client() as c, _bar("downloading") as (_, moved):
        found, digest = c.export_tarball(name, dest, version, moved)
    console.print(
        f"wrote {plain(dest)}: {plain(name)}@{plain(found)}, {plain(digest)}", highlight=False
    )


@app.command()
def shell(
    name: NameArg,
    command: Annotated[
        str | None, typer.Option("--command", "-c", help="Run this instead of a shell.")
    ] = None,
) -> None:
    """A shell in the workspace; exit with its status.

    On a terminal: an interactive one (raw mode, resize, Ctrl-C reaches the workspace),
    like `kawa connect`. Otherwise what is piped in runs as a shell script."""
    if sys.stdin.isatty():
        from kawa.cli.streams import _credentials, _run
        from kawa.client.terminal import run_terminal

        url, token, ca_file = _credentials()
        argv = ["/bin/sh", "-c", command] if command else None
        where = f"environments/{name}"
        code = _run(run_terminal(url, token, name, argv, path=where, ca_file=ca_file))
        raise typer.Exit(int(code) & 0xFF if code is not None else 1)
    stdin = sys.stdin.buffer.read()

    def output(stream: str, data: bytes) -> None:
        out = sys.stderr.buffer if stream == "stderr" else sys.stdout.buffer
        out.write(data)
        out.flush()

    with client() as c:
        code = c.run_script(name, stdin, command, output)
    raise typer.Exit(code)


@app.command()
def bootstrap(
    name: NameArg,
    suite: Annotated[str, typer.Option(help="Debian suite.")] = "bookworm",
    mirror: Annotated[str | None, typer.Option(help="Mirror URL (default: apt's).")] = None,
    json: JsonOpt = False,
) -> None:
    """Build a base environment from the OS package mirror (debootstrap, no registry)."""
    with client() as c, _bar("bootstrap") as (phase, _):
        version = c.bootstrap(name, suite, mirror, phase)
    print_json(version) if json else _done(version, "bootstrapped")
