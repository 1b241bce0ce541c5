"""Serving one terminal stream: ``docker exec`` with a TTY in a container, relayed to a
multiplexed stream (docs/streams.md).

Shared by the runner (a task's container) and the host (a workspace container on the
host's Docker); it knows containers and streams only, nothing of either side's state.
"""

from __future__ import annotations

import asyncio
from typing import Any

import docker

from kawa.docker_exec.exec_tty import DEFAULT_SHELL, ExecError, ExecTTY
from kawa.mux.stream import MuxStream
from kawa.relay.pipe import relay


def terminal_args(params: dict[str, Any]) -> tuple[list[str], int, int, str]:
    """(command, rows, cols, TERM) from a stream's OPEN parameters; ValueError if bad."""
    command = params.get("command") or DEFAULT_SHELL
    if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
        raise ValueError("command must be a list of strings")
    rows, cols = params.get("rows", 24), params.get("cols", 80)
    if not all(isinstance(n, int) and 0 < n < 65536 for n in (rows, cols)):
        raise ValueError("rows and cols must be 1..65535")
    return command, rows, cols, str(params.get("term") or "xterm-256color")


async def serve_terminal(
    stream: MuxStream, client: docker.DockerClient, container: str, label: str
) -> None:
    """Run the stream's command on a TTY in ``container`` until it exits (EXIT with its
    code) or the stream goes away (the exec's processes are killed). ``label`` names
    what the terminal is in, for messages (``task 12``, ``workspace py312``)."""
    try:
        command, rows, cols, term = terminal_args(stream.params)
    except ValueError as exc:
        await stream.fail(f"bad terminal parameters: {exc}")
        return
    tty = ExecTTY(client, container)
    try:
        await tty.start(command, rows, cols, term)
    except (ExecError, OSError, TimeoutError) as exc:
        await stream.fail(str(exc) or "docker exec failed")
        return
    resizes: set[asyncio.Task[None]] = set()

    def on_resize(r: int, c: int) -> None:
        task = asyncio.create_task(tty.resize(r, c))
        resizes.add(task)
        task.add_done_callback(resizes.discard)

    stream.on_resize = on_resize
    exited = False
    try:
        await relay(tty, stream, ends_with=tty, close=False)
        code = await tty.exit_code()
        exited = code is not None
        if code is None:
            await stream.fail(f"{label}: the terminal ended without an exit code")
        else:
            await stream.send_exit(code)
            await stream.close()
    finally:
        for task in list(resizes):
            task.cancel()
        await tty.close()
        if not exited:
            tty.kill()
