"""``kawa ssh``, ``kawa ssh-config`` and the hidden ``kawa proxy`` (docs/vps.md).

``kawa ssh ID`` runs the stock ``ssh`` client over a tunnel to the VPS's sshd (or, where
the cluster carries no tunnels, one relayed forward stream), so the only SSH encryption
is the user's own session. The work is in :mod:`kawa.cli.ssh_run` and
:mod:`kawa.cli.proxy_run`, which ``kawa.cli.main`` also calls directly for plain command
lines. ``kawa ssh-config`` blocks use ``kawa proxy ID 22`` as their ``ProxyCommand``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from kawa.cli.arguments import TaskArg, VpsArg
from kawa.cli.proxy_run import run_proxy
from kawa.cli.ssh_args import KNOWN_HOSTS, default_identity, proxy_command, split_ssh_args
from kawa.cli.ssh_run import run_ssh

__all__ = ["default_identity", "proxy", "proxy_command", "run_ssh", "split_ssh_args", "ssh"]


def ssh(
    ctx: typer.Context,
    vps_id: VpsArg,
    identity: Annotated[
        Path | None, typer.Option("--identity", "-i", help="Private key for ssh.")
    ] = None,
) -> None:
    """SSH into a running VPS with stock ssh: kawa ssh ID [-- SSH-OPTIONS… COMMAND…]"""
    raise typer.Exit(run_ssh(vps_id, identity, list(ctx.args)))


_ALIAS = re.compile(r"[A-Za-z0-9._-]+")


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
        # a name goes into the config only as a plain word: anything else (spaces,
        # newlines) could add patterns or directives to the user's ssh config
        alias = t.name if t.name and _ALIAS.fullmatch(t.name) else t.id
        lines = [
            f"Host kawa-{alias}",
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


def proxy(
    task_id: TaskArg,
    port: Annotated[int, typer.Argument(help="Port inside the container.", min=1, max=65535)],
) -> None:
    """Relay stdin/stdout to one port of a task (an ssh ProxyCommand)."""
    raise typer.Exit(run_proxy(task_id, port))
