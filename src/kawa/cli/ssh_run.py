"""``kawa ssh`` and ``kawa vps connect``, kept light (docs/vps.md).

``kawa ssh`` is on the VPS startup path (timed against ``docker run`` + ``ssh``, see
docs/benchmarks.md), so it is one process that imports
neither typer, rich, httpx nor the API models when its command line is plain:

1. it reads the client configuration and looks the VPS up (:mod:`kawa.cli.lite`);
2. it listens on a Unix socket in a fresh private (0700) directory and starts the stock
   ``ssh`` at once, with ``ProxyUseFdpass=yes`` and a ``ProxyCommand`` that is a few
   lines of ``python -S`` connecting to that socket (:mod:`kawa.cli.ssh_args`);
3. meanwhile it opens a tunnel to port 22 of the VPS (:mod:`kawa.client.tunnel`) and
   sends it to the helper, which hands it to ssh: no Kawa process is left in the data
   path. Where the cluster carries no tunnels, the helper hands ssh its own connection
   and this process relays it over a forward stream (:mod:`kawa.cli.proxy_run`).
   It exits with ssh's status.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kawa.cli.output import CliError
from kawa.cli.proxy_run import PORT_POLL, SSHD_WAIT, Forward, open_forward, run_loop, run_proxy
from kawa.cli.ssh_args import (
    fdpass_command,
    outlives,
    own_proxy,
    parse_ssh,
    plain_ref,
    proxy_command,
    split_ssh_args,
    ssh_argv,
)

if TYPE_CHECKING:
    import asyncio
    import socket

    from kawa.cli.lite import Credentials

LINGER = 2.0
"""Seconds the relay may go on after ssh exited."""


ASSIGN_WAIT = 30.0
"""Seconds ``kawa ssh`` waits for a VPS that is being started (``assigning``)."""


POLL = 0.05
"""Seconds between looks at a VPS being started."""


@dataclass(frozen=True)
class Vps:
    id: str
    ssh_key: str | None


def check_running(task_id: str, kind: str, state: str) -> None:
    if kind != "vps":
        raise CliError(f"task {task_id} is not a VPS (it is a {kind} task)")
    if state != "running":
        hint = {
            "stopped": f"; `kawa vps restart {task_id}` starts it again",
            "paused": f"; `kawa vps resume {task_id}` resumes it",
            "pending": "; it is waiting for resources",
        }.get(state, "")
        raise CliError(f"VPS {task_id} is {state}, not running{hint}")


def _lookup(ref: str, creds: Credentials) -> tuple[Vps, str, str]:
    """(the task ``ref`` names, its kind, its state)."""
    from kawa.cli import lite
    from kawa.client.errors import KawaError
    from kawa.client.refs import path_segment

    if lite.usable(creds):
        try:
            path = f"/tasks/{path_segment(ref, 'task id')}"
        except KawaError as exc:
            raise CliError(exc.message, 2) from None
        found = lite.call(creds, "GET", path)
        if not isinstance(found, dict):
            raise CliError(f"unexpected answer from {creds.url}: {type(found).__name__}")
        t = Vps(str(found["id"]), found.get("ssh_key"))
        return t, str(found.get("kind")), str(found.get("state"))
    from kawa.client import KawaClient

    with KawaClient(creds.url, creds.token, creds.timeout, creds.ca_file) as c:
        view = c.task(ref)
    return Vps(view.id, view.ssh_key), view.kind.value, view.state.value


def running_vps(ref: str, creds: Credentials) -> Vps:
    """The VPS ``ref`` names (id, unique prefix or name), refused unless it is running.
    A VPS being started (``assigning``: placed, its runner starting the container) is
    waited for, up to ``ASSIGN_WAIT`` seconds, so ``kawa vps create`` then ``kawa ssh``
    works."""
    import time

    deadline = time.monotonic() + ASSIGN_WAIT
    t, kind, state = _lookup(ref, creds)
    while kind == "vps" and state == "assigning" and time.monotonic() < deadline:
        time.sleep(POLL)
        t, kind, state = _lookup(t.id, creds)
    check_running(t.id, kind, state)
    return t


def _spawn(argv: list[str]) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(argv)
    except FileNotFoundError:
        raise CliError("the ssh client is not installed (install openssh-client)") from None


def run_ssh(ref: str, identity: Path | None, args: list[str]) -> int:
    """``kawa ssh REF [--identity F] [-- ARGS…]``: ssh's exit status."""
    from kawa.cli import lite

    creds = lite.credentials()
    t = running_vps(ref, creds)
    classic = ssh_argv(t, identity, args, proxy_command(t.id))
    if own_proxy(split_ssh_args(args)[0]) or outlives(classic):
        return _wait(_spawn(classic))
    import socket
    import tempfile

    with tempfile.TemporaryDirectory(prefix="kawa-ssh-") as private:  # 0700
        path = os.path.join(private, "s")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            try:
                listener.bind(path)
                listener.listen(1)
            except OSError:  # e.g. a $TMPDIR too long for a socket path
                return _wait(_spawn(classic))
            proc = _spawn(ssh_argv(t, identity, args, fdpass_command(path)))
            return int(run_loop(_carry(proc, listener, creds, t.id)))
        finally:
            listener.close()


def _wait(proc: subprocess.Popen[bytes]) -> int:
    """As ``subprocess.call``: ssh is killed if this wait is interrupted."""
    with proc:
        try:
            return proc.wait()
        except BaseException:
            proc.kill()
            raise


def _forward_signal(proc: subprocess.Popen[bytes], sig: int) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)


def _say(message: str) -> None:
    from kawa.cli.output import visible

    sys.stderr.write(f"kawa ssh: {visible(message)}\n")
    sys.stderr.flush()


async def _first(*futures: asyncio.Future[Any]) -> None:
    import asyncio

    await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)


async def _carry(
    proc: subprocess.Popen[bytes], listener: socket.socket, creds: Credentials, task_id: str
) -> int:
    """Open the session while ssh starts, relay ssh's connection to the VPS's port 22,
    return ssh's status. Signals that reach this process (Ctrl-C without a terminal, a
    hangup) are passed to ssh, which decides; this process always waits for it."""
    import asyncio
    import signal
    import socket

    from kawa.mux.stream import SessionClosed, StreamError
    from kawa.relay.pipe import adopt_socket, relay

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, _forward_signal, proc, sig)
    exited: asyncio.Future[int] = asyncio.ensure_future(loop.run_in_executor(None, proc.wait))
    listener.setblocking(False)
    accepted = asyncio.ensure_future(loop.sock_accept(listener))
    tunneled = asyncio.ensure_future(_tunnel(creds, task_id, 22))
    opened: asyncio.Future[Forward] = loop.create_future()
    forward: Forward | None = None
    conn: socket.socket | None = None
    try:
        await _first(accepted, exited)  # ssh's helper connects at once
        if not accepted.done():
            return await exited  # ssh ended before connecting (bad options, …)
        conn, _ = accepted.result()
        await _first(tunneled, exited)
        if not tunneled.done():
            return await exited
        try:
            direct = tunneled.result()
        except CliError as exc:
            _say(exc.message)
            return await _closed(conn, exited)
        if direct is not None:  # ssh gets the tunnel itself: nothing to relay here
            with direct:
                fd = direct.fileno().to_bytes(4, sys.byteorder)
                conn.sendmsg([b"t"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fd)])
            return await _closed(conn, exited)
        conn.sendall(b"r")  # no tunnel on this path: ssh gets this socket, relayed below
        opened = asyncio.ensure_future(open_forward(creds, task_id, 22, server_first=True))
        await _first(opened, exited)
        if not opened.done():
            return await exited
        try:
            forward = opened.result()
        except CliError as exc:
            _say(exc.message)
            return await _closed(conn, exited)  # ssh sees the connection close, says so
        pipe = await adopt_socket(conn)
        conn = None  # the pipe owns it
        if forward.first:
            await pipe.write(forward.first)  # sshd's banner
        relaying = asyncio.ensure_future(relay(pipe, forward.stream))
        await _first(relaying, exited)
        if not relaying.done():  # ssh is gone: let its last bytes and EOF go, briefly
            await asyncio.wait({relaying}, timeout=LINGER)
            relaying.cancel()
        try:
            await relaying
        except asyncio.CancelledError:
            pass
        except (StreamError, SessionClosed, ConnectionError) as exc:
            _say(str(exc))
            pipe.abort()
        return await exited
    finally:
        for pending in (accepted, tunneled, opened):
            pending.cancel()
        await asyncio.gather(accepted, tunneled, opened, return_exceptions=True)
        if conn is not None:
            conn.close()
        if forward is not None:
            await forward.close()
        await asyncio.shield(exited)


async def _tunnel(creds: Credentials, task_id: str, port: int) -> socket.socket | None:
    """A tunnel to ``port`` of the VPS (:mod:`kawa.client.tunnel`), retried while
    nothing listens there yet (sshd starting) for up to ``SSHD_WAIT`` seconds; None
    where this cluster carries no tunnels; CliError with the reason otherwise."""
    import asyncio

    from kawa.client.errors import KawaError
    from kawa.client.tunnel import TunnelUnavailable, open_tunnel

    loop = asyncio.get_running_loop()
    deadline = loop.time() + SSHD_WAIT
    while True:
        try:
            return await asyncio.to_thread(open_tunnel, creds.url, creds.token, task_id, port)
        except TunnelUnavailable:
            return None
        except KawaError as exc:
            if not exc.message.startswith("connection refused") or loop.time() > deadline:
                raise CliError(exc.message) from None
        await asyncio.sleep(PORT_POLL)


async def _closed(conn: socket.socket, exited: asyncio.Future[int]) -> int:
    conn.close()
    return await exited


def fast_path(argv: list[str]) -> Callable[[], int] | None:
    """``kawa ssh`` and ``kawa proxy`` command lines simple enough to run without typer
    (anything else, ``--help`` included, goes through the full CLI)."""
    if argv[:1] == ["ssh"]:
        parsed = parse_ssh(argv[1:])
        if parsed is not None:
            return lambda: run_ssh(*parsed)
    elif argv[:1] == ["proxy"] and len(argv) == 3:
        task_id, port = argv[1], argv[2]
        if plain_ref(task_id) and port.isdigit() and 0 < int(port) < 65536:
            return lambda: run_proxy(task_id, int(port))
    return None
