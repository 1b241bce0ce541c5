"""The ``kawa`` entry point. Keep imports light: ``kawa --help`` must start fast."""

from __future__ import annotations

import sys

import typer

from kawa.cli import cluster, containers, nodes, tasks, vps
from kawa.cli import files as file_commands
from kawa.cli import ssh as ssh_commands
from kawa.cli import streams as stream_commands
from kawa.cli.output import CliError, err_console

app = typer.Typer(
    help="Kawa: a small cluster as one computer.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(tasks.app, name="task")
app.add_typer(nodes.app, name="node")
app.add_typer(containers.app, name="container")
app.add_typer(file_commands.app, name="files")
app.add_typer(cluster.init_app, name="init")
app.command()(cluster.up)
app.command()(cluster.host)
app.command()(cluster.runner)
app.command()(stream_commands.connect)
app.command()(stream_commands.forward)
app.add_typer(vps.app, name="vps")
app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
    ssh_commands.ssh
)
app.command("ssh-config")(ssh_commands.ssh_config)
app.command(hidden=True)(ssh_commands.proxy)


def _message(exc: BaseException) -> tuple[str, int] | None:
    from kawa.client.errors import KawaError
    from kawa.settings import ConfigError

    if isinstance(exc, CliError):
        return exc.message, exc.code
    if isinstance(exc, KawaError):
        return exc.message, 1
    if isinstance(exc, ConfigError):
        return str(exc), 2
    return None


def run() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        found = _message(exc)
        if found is None:
            raise
        from rich.markup import escape

        err_console.print(f"[red]error:[/red] {escape(found[0])}", highlight=False)
        sys.exit(found[1])


if __name__ == "__main__":
    run()
