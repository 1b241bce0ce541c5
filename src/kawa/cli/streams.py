"""``kawa connect`` and ``kawa forward``: a terminal into a running task, and its ports
forwarded to this machine, over the host (no sshd or port mapping in the container).

Imports stay inside the commands so ``kawa --help`` does not pay for asyncio and
websockets.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from kawa.cli.arguments import TaskArg
from kawa.cli.output import CliError, visible


def _credentials() -> tuple[str, str, str | None]:
    """URL, token and CA file (or None) of the configured host."""
    from kawa.cli.context import client

    with client() as c:
        return c.url, c.token, None if c.ca_file is None else str(c.ca_file)


def _run(main: Any) -> Any:
    from kawa.cli.serve import run_event_loop

    result: list[Any] = []

    async def wrapper() -> None:
        result.append(await main)

    run_event_loop(wrapper())
    return result[0] if result else None


def connect(
    task_id: TaskArg,
    command: Annotated[
        str | None,
        typer.Option("--command", "-c", help="Run this shell command line instead of a shell."),
    ] = None,
    ide: Annotated[
        bool, typer.Option("--ide", help="File tree, editor and terminal (a TUI; Ctrl-Q quits).")
    ] = False,
) -> None:
    """Open a terminal in a running task's container (exit with `exit` or Ctrl-D).

    The CLI exits with the remote process's exit code.
    """
    from kawa.client.terminal import run_terminal

    url, token, ca_file = _credentials()
    if ide:
        from kawa.tui.ide import run_ide

        run_ide(url, token, task_id, ca_file=ca_file)
        return
    argv = ["/bin/sh", "-c", command] if command else None
    code = _run(run_terminal(url, token, task_id, argv, ca_file=ca_file))
    raise typer.Exit(int(code) & 0xFF if code is not None else 1)


def forward(
    task_id: TaskArg,
    port: Annotated[
        int, typer.Argument(help="Port inside the task's container.", min=1, max=65535)
    ],
    local_port: Annotated[
        int | None,
        typer.Option(
            "--local-port",
            "-l",
            help="Local port (default: PORT; 0 picks a free one).",
            min=0,
            max=65535,
        ),
    ] = None,
    bind: Annotated[str, typer.Option("--bind", help="Local address to listen on.")] = "127.0.0.1",
) -> None:
    """Forward a local port to a port inside a running task's container (Ctrl-C stops).

    Every local connection becomes one stream of a single session; nothing is
    installed in the container and no Docker port is published.
    """
    import sys

    from kawa.client.streams import forward as forward_ports

    url, token, ca_file = _credentials()

    def listening(host: str, bound: int, info: dict[str, Any]) -> None:
        where = visible(info.get("address", "?"))
        print(f"listening on {host}:{bound} -> task {task_id} port {port} ({where})", flush=True)

    def failed(message: str) -> None:
        print(f"kawa forward: {visible(message)}", file=sys.stderr, flush=True)

    try:
        _run(
            forward_ports(
                url,
                token,
                task_id,
                port,
                local_port=local_port,
                bind=bind,
                on_listening=listening,
                on_error=failed,
                ca_file=ca_file,
            )
        )
    except OSError as exc:  # the local port is taken, or the address is not ours
        why = exc.strerror or exc
        raise CliError(f"cannot listen on {bind}:{local_port or port}: {why}") from None
