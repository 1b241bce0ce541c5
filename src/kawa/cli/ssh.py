"""``kawa ssh``, ``kawa ssh-config`` and the hidden ``kawa proxy`` (docs/vps.md).

``kawa ssh ID`` runs the stock ``ssh`` client with a ``ProxyCommand`` that is
``kawa proxy ID 22``: one forward stream through the host to the VPS's sshd (the
relay of ``kawa forward``), so the only SSH encryption is the user's own session.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kawa.cli.output import CliError

if TYPE_CHECKING:
    from kawa.protocol.tasks import TaskView

KNOWN_HOSTS = "~/.ssh/kawa_known_hosts"
_VALUE_OPTIONS = frozenset("BbcDEeFIiJLlmOopQRSWw")
"""ssh's one-letter options that take a value (the next argument when not attached)."""


def proxy_command(task_id: str, port: int = 22) -> str:
    python = shlex.quote(sys.executable)
    return f"{python} -m kawa.cli.main proxy {task_id} {port}"


def split_ssh_args(args: list[str]) -> tuple[list[str], list[str]]:
    """(ssh options, remote command): leading ``-x`` options go before the destination."""
    options: list[str] = []
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "--":
        arg = args[i]
        options.append(arg)
        i += 1
        if len(arg) == 2 and arg[1] in _VALUE_OPTIONS and i < len(args):
            options.append(args[i])
            i += 1
    if i < len(args) and args[i] == "--":
        i += 1
    return options, args[i:]


def default_identity(t: TaskView) -> Path | None:
    """The private key in ``~/.ssh`` that matches the VPS's key: the generated
    ``kawa_vps_<id>``, then ``id_ed25519`` and ``id_rsa`` (ssh itself looks in the
    passwd home, not in ``$HOME``)."""
    ssh_dir = Path.home() / ".ssh"
    generated = ssh_dir / f"kawa_vps_{t.id}"
    if generated.exists():
        return generated
    wanted = t.ssh_key.split()[:2] if t.ssh_key else None
    for name in ("id_ed25519", "id_rsa"):
        private, public = ssh_dir / name, ssh_dir / f"{name}.pub"
        try:
            if private.exists() and public.read_text().split()[:2] == wanted:
                return private
        except OSError:
            continue
    return None


def running_vps(ref: str) -> TaskView:
    from kawa.cli.context import client

    with client() as c:
        t = c.task(ref)
    if t.kind.value != "vps":
        raise CliError(f"task {t.id} is not a VPS (it is a {t.kind.value} task)")
    if t.state.value != "running":
        hint = {
            "stopped": f"; `kawa vps restart {t.id}` starts it again",
            "paused": f"; `kawa vps resume {t.id}` resumes it",
            "pending": "; it is waiting for resources",
        }.get(t.state.value, "")
        raise CliError(f"VPS {t.id} is {t.state.value}, not running{hint}")
    return t


def ssh_argv(t: TaskView, identity: Path | None, args: list[str]) -> list[str]:
    options, command = split_ssh_args(args)
    key = identity or default_identity(t)
    argv = ["ssh", *options]
    if key is not None:
        argv += ["-i", str(key)]
    argv += [
        "-o", f"ProxyCommand={proxy_command(t.id)}",
        "-o", "StrictHostKeyChecking=accept-new",
        "-o", f"UserKnownHostsFile={KNOWN_HOSTS}",
        "-o", f"HostKeyAlias=kawa-{t.id}",
        "-l", "root",
        f"kawa-{t.id}",
        *command,
    ]  # fmt: skip
    return argv


def run_ssh(ref: str, identity: Path | None, args: list[str]) -> int:
    t = running_vps(ref)
    argv = ssh_argv(t, identity, args)
    try:
        return subprocess.call(argv)
    except FileNotFoundError:
        raise CliError("the ssh client is not installed (install openssh-client)") from None


def ssh(
    ctx: typer.Context,
    vps_id: Annotated[str, typer.Argument(help="VPS id (or a unique prefix).")],
    identity: Annotated[
        Path | None, typer.Option("--identity", "-i", help="Private key for ssh.")
    ] = None,
) -> None:
    """SSH into a running VPS with stock ssh: kawa ssh ID [-- SSH-OPTIONS… COMMAND…]"""
    raise typer.Exit(run_ssh(vps_id, identity, list(ctx.args)))


def ssh_config(
    identity: Annotated[
        Path | None, typer.Option("--identity", "-i", help="IdentityFile for every block.")
    ] = None,
) -> None:
    """Print ~/.ssh/config Host blocks (kawa-<name-or-id>) for your VPSs."""
    from kawa.cli.context import client

    with client() as c:
        found = c.tasks(
            ["pending", "assigning", "running", "paused", "lost", "stopped"], kind="vps"
        )
    for t in found:
        key = identity or default_identity(t)
        lines = [
            f"Host kawa-{t.name or t.id}",
            f"    HostName kawa-{t.id}",
            "    User root",
            f"    ProxyCommand {proxy_command(t.id)}",
            "    StrictHostKeyChecking accept-new",
            f"    UserKnownHostsFile {KNOWN_HOSTS}",
            f"    HostKeyAlias kawa-{t.id}",
        ]
        if key is not None:
            lines.append(f"    IdentityFile {key}")
        typer.echo("\n".join(lines) + "\n")


class _StdioPipe:
    """stdin/stdout as a relay pipe. stdin is read by a daemon thread, so a read
    blocked at exit never holds the process."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=4)
        threading.Thread(target=self._reader, name="proxy-stdin", daemon=True).start()

    def _reader(self) -> None:
        while True:
            try:
                chunk = os.read(0, 65536)
            except OSError:
                chunk = b""
            asyncio.run_coroutine_threadsafe(self._queue.put(chunk), self._loop).result()
            if not chunk:
                return

    async def read(self) -> bytes:
        return await self._queue.get()

    async def write(self, data: bytes) -> None:
        await asyncio.to_thread(_write_all, data)

    async def write_eof(self) -> None:
        os.close(1)

    async def close(self) -> None:
        return None


def _write_all(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(1, view) :]


async def _proxy(url: str, token: str, task_id: str, port: int) -> None:
    from kawa.client.streams import open_session
    from kawa.relay.pipe import relay

    async with open_session(url, token, task_id, "forward") as mux:
        stream = await mux.open({"port": port})
        await relay(_StdioPipe(), stream)


def proxy(
    task_id: Annotated[str, typer.Argument(help="Task id (or a unique prefix).")],
    port: Annotated[int, typer.Argument(help="Port inside the container.", min=1, max=65535)],
) -> None:
    """Relay stdin/stdout to one port of a task (an ssh ProxyCommand)."""
    from kawa.cli.streams import _credentials, _run
    from kawa.relay.stream import SessionClosed, StreamError

    url, token = _credentials()
    try:
        _run(_proxy(url, token, task_id, port))
    except (StreamError, SessionClosed, ConnectionError) as exc:
        raise CliError(f"kawa proxy: {exc}") from None
