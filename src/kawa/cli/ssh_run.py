"""``kawa ssh`` / ``kawa vps connect`` and ``kawa proxy``, kept light (docs/vps.md).

``kawa ssh`` is on the VPS startup path (issue 5), so it is one process that imports
neither typer, rich, httpx nor the API models when its command line is plain:

1. it reads the client configuration and looks the VPS up (:mod:`kawa.cli.lite`);
2. it listens on a Unix socket in a fresh private (0700) directory and starts the stock
   ``ssh`` at once, with ``ProxyUseFdpass=yes`` and a ``ProxyCommand`` that is a few
   lines of ``python -S`` connecting to that socket and handing the connection to ssh
   (so ssh talks to this process directly; the helper exits at once);
3. meanwhile it opens the forward session (docs/streams.md) to port 22 of the VPS and,
   once ssh is connected, relays the socket to that stream, then exits with ssh's status.

``kawa proxy ID PORT`` (the ``ProxyCommand`` of ``kawa ssh-config`` blocks) relays its
stdin/stdout to one forward stream the same way.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from kawa.cli.output import CliError

if TYPE_CHECKING:
    import asyncio
    import socket

    from kawa.cli.lite import Credentials
    from kawa.relay.mux import Mux
    from kawa.relay.pipe import Pipe

KNOWN_HOSTS = "~/.ssh/kawa_known_hosts"
_VALUE_OPTIONS = frozenset("BbcDEeFIiJLlmOopQRSWw")
"""ssh's one-letter options that take a value (the next argument when not attached)."""
_OWN_PROXY = ("proxycommand", "proxyjump", "proxyusefdpass")
"""ssh options that change how ssh connects: with them, ssh runs ``kawa proxy`` as before."""
LINGER = 2.0
"""Seconds the relay may go on after ssh exited."""
ASSIGN_WAIT = 30.0
"""Seconds ``kawa ssh`` waits for a VPS that is being started (``assigning``)."""
SSHD_WAIT = 10.0
"""Seconds ``kawa ssh`` retries port 22 of a running VPS where nothing listens yet (its
sshd is starting: the container's main process is sshd, so it is not gone)."""
POLL = 0.05
"""Seconds between looks at a VPS being started."""
PORT_POLL = 0.02
"""Seconds between tries of a port where nothing listens yet."""

FDPASS_HELPER = (
    "import _socket as s,sys\n"
    "c=s.socket(s.AF_UNIX,s.SOCK_STREAM)\n"
    "c.connect(sys.argv[1])\n"
    "m,a,f,_=c.recvmsg(1,s.CMSG_SPACE(4))\n"
    "n=int.from_bytes(a[0][2][:4],sys.byteorder) if a else c.fileno()\n"
    "s.socket(fileno=1).sendmsg([b'k'],"
    "[(s.SOL_SOCKET,s.SCM_RIGHTS,n.to_bytes(4,sys.byteorder))])\n"
)
"""The ``ProxyCommand`` of ``kawa ssh``: connect to ``argv[1]``, then pass ssh (over its
stdout, ``ProxyUseFdpass``) the socket ``kawa ssh`` sends back (a tunnel to the VPS's
port 22) or, if it sends none, this connection itself (``kawa ssh`` then relays it).
Only ``_socket`` is imported."""


class KeyedTask(Protocol):
    """What picking an identity needs: a ``TaskView`` or a :class:`Vps`."""

    @property
    def id(self) -> str: ...

    @property
    def ssh_key(self) -> str | None: ...


@dataclass(frozen=True)
class Vps:
    id: str
    ssh_key: str | None


def _ssh_option(value: str) -> str:
    return value.replace("%", "%%")  # ssh expands %-tokens in ProxyCommand


def proxy_command(task_id: str, port: int = 22) -> str:
    python = shlex.quote(sys.executable)
    return f"{python} -m kawa.cli.main proxy {task_id} {port}"


def fdpass_command(path: str) -> str:
    argv = [sys.executable, "-S", "-I", "-c", FDPASS_HELPER, path]
    return _ssh_option(shlex.join(argv))


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


def default_identity(t: KeyedTask) -> Path | None:
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
    from urllib.parse import quote

    from kawa.cli import lite

    if lite.usable(creds):
        found = lite.call(creds, "GET", f"/tasks/{quote(ref, safe='')}")
        if not isinstance(found, dict):
            raise CliError(f"unexpected answer from {creds.url}: {type(found).__name__}")
        t = Vps(str(found["id"]), found.get("ssh_key"))
        return t, str(found.get("kind")), str(found.get("state"))
    from kawa.client import KawaClient

    with KawaClient(creds.url, creds.token, creds.timeout) as c:
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


def ssh_argv(t: KeyedTask, identity: Path | None, args: list[str], proxy: str) -> list[str]:
    options, command = split_ssh_args(args)
    key = identity or default_identity(t)
    argv = ["ssh", *options]
    if key is not None:
        argv += ["-i", str(key)]
    argv += ["-o", f"ProxyCommand={proxy}"]
    if proxy.startswith(shlex.quote(sys.executable) + " -S -I "):
        argv += ["-o", "ProxyUseFdpass=yes"]
    argv += [
        "-o", "StrictHostKeyChecking=accept-new",
        "-o", f"UserKnownHostsFile={KNOWN_HOSTS}",
        "-o", f"HostKeyAlias=kawa-{t.id}",
        "-l", "root",
        f"kawa-{t.id}",
        *command,
    ]  # fmt: skip
    return argv


def _own_proxy(options: list[str]) -> bool:
    """Whether the user's ssh options choose how to connect (-J, ProxyCommand, …)."""
    for i, arg in enumerate(options):
        if arg.startswith("-J"):
            return True
        if arg.startswith("-o"):
            value = arg[2:] or (options[i + 1] if i + 1 < len(options) else "")
            if value.strip().lower().startswith(_OWN_PROXY):
                return True
    return False


def _outlives(argv: list[str]) -> bool:
    """Whether this ssh may go on in the background after its process exits (``-f``,
    a ``ControlMaster``/``ControlPersist`` from the options or the user's ssh config,
    read with ``ssh -G``), or its configuration could not be read. Such a connection
    must not depend on this process: it gets ``kawa proxy`` as its ProxyCommand."""
    try:
        done = subprocess.run(
            [argv[0], "-G", *argv[1:]],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return True
    if done.returncode != 0:
        return True
    found = dict(line.partition(" ")[::2] for line in done.stdout.splitlines())
    return (
        found.get("controlmaster", "false") not in ("false", "no")
        or found.get("controlpersist", "no") not in ("no", "false", "0")
        or found.get("forkafterauthentication", "no") not in ("no", "false")
    )


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
    if _own_proxy(split_ssh_args(args)[0]) or _outlives(classic):
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
            return int(_loop(_carry(proc, listener, creds, t.id)))
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


def _loop(main: Any) -> Any:
    """Run ``main`` on uvloop when it is installed (as ``kawa forward`` does), else asyncio."""
    import asyncio

    sys.setswitchinterval(0.001)  # the relay shares the interpreter with a waiting thread
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def _forward_signal(proc: subprocess.Popen[bytes], sig: int) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)


def _say(message: str) -> None:
    sys.stderr.write(f"kawa ssh: {message}\n")
    sys.stderr.flush()


class Forward:
    """One forward stream to a port of a task's container, in a session of its own;
    ``first``: what the server sent first, when it was waited for."""

    def __init__(
        self, mux: Mux, reader: asyncio.Future[Any], stream: Pipe, first: bytes = b""
    ) -> None:
        self.mux, self.reader, self.stream, self.first = mux, reader, stream, first

    async def close(self) -> None:
        import asyncio

        await self.mux.close()
        await asyncio.gather(self.reader, return_exceptions=True)


async def open_forward(
    creds: Credentials, task_id: str, port: int, *, server_first: bool = False
) -> Forward:
    """A forward session to ``task_id`` and one stream to ``port``; CliError with the
    host's reason if refused (:func:`kawa.client.streams.connect_session`).

    With ``server_first`` (a protocol whose server speaks first, as SSH's does), the
    server's first bytes are read into ``first`` before returning, and a port where
    nothing listens yet is tried again for up to ``SSHD_WAIT`` seconds."""
    import asyncio

    from kawa.client.errors import KawaError
    from kawa.client.streams import connect_session

    try:
        mux, reader = await connect_session(creds.url, creds.token, task_id, "forward")
    except KawaError as exc:
        raise CliError(exc.message) from None
    try:
        if not server_first:
            return Forward(mux, reader, await mux.open({"port": port}))
        stream, first = await _server_first(mux, port)
    except BaseException:
        await mux.close()
        await asyncio.gather(reader, return_exceptions=True)
        raise
    return Forward(mux, reader, stream, first)


async def _server_first(mux: Mux, port: int) -> tuple[Pipe, bytes]:
    import asyncio

    from kawa.relay.stream import StreamError

    loop = asyncio.get_running_loop()
    deadline = loop.time() + SSHD_WAIT
    while True:
        stream = await mux.open({"port": port})
        try:
            return stream, bytes(await stream.read())
        except StreamError as exc:
            if not str(exc).startswith("connection refused") or loop.time() > deadline:
                raise CliError(str(exc)) from None
        await stream.close()
        await asyncio.sleep(PORT_POLL)


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

    from kawa.relay.pipe import adopt_socket, relay
    from kawa.relay.stream import SessionClosed, StreamError

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


class _StdioPipe:
    """stdin/stdout as a relay pipe. stdin is read by a daemon thread, so a read
    blocked at exit never holds the process."""

    def __init__(self) -> None:
        import asyncio
        import threading

        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=4)
        threading.Thread(target=self._reader, name="proxy-stdin", daemon=True).start()

    def _reader(self) -> None:
        import asyncio

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
        import asyncio

        await asyncio.to_thread(_write_all, data)

    async def write_eof(self) -> None:
        os.close(1)

    async def close(self) -> None:
        return None


def _write_all(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(1, view) :]


async def _proxy(creds: Credentials, task_id: str, port: int) -> None:
    from kawa.relay.pipe import relay

    forward = await open_forward(creds, task_id, port)
    try:
        await relay(_StdioPipe(), forward.stream)
    finally:
        await forward.close()


def run_proxy(task_id: str, port: int) -> int:
    """``kawa proxy ID PORT``: relay stdin/stdout to one port of a task."""
    from kawa.cli import lite
    from kawa.client.errors import KawaError
    from kawa.client.tunnel import TunnelUnavailable, open_tunnel
    from kawa.relay.stream import SessionClosed, StreamError

    creds = lite.credentials()
    try:
        tunnel = open_tunnel(creds.url, creds.token, task_id, port)
    except TunnelUnavailable:  # this cluster carries sessions only: relay one stream
        tunnel = None
    except KawaError as exc:
        raise CliError(exc.message) from None
    if tunnel is not None:
        with tunnel:
            join_stdio(tunnel)
        return 0
    try:
        _loop(_proxy(creds, task_id, port))
    except (StreamError, SessionClosed, ConnectionError) as exc:
        raise CliError(f"kawa proxy: {exc}") from None
    return 0


def join_stdio(sock: socket.socket) -> None:
    """Copy stdin to ``sock`` (a thread) and ``sock`` to stdout until the far end closes;
    stdin's end is passed on as a half-close."""
    import socket
    import threading

    def up() -> None:
        try:
            while chunk := os.read(0, _CHUNK):
                sock.sendall(chunk)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)

    threading.Thread(target=up, name="proxy-stdin", daemon=True).start()
    try:
        while chunk := sock.recv(_CHUNK):
            _write_all(chunk)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            os.close(1)


_CHUNK = 256 * 1024


def _parse_ssh(args: list[str]) -> tuple[str, Path | None, list[str]] | None:
    """``REF [-i F | --identity F | --identity=F] [-- ARGS…]`` in any order before
    ``--``; None for anything else (typer then parses it, as it always did)."""
    ref: str | None = None
    identity: Path | None = None
    i = 0
    while i < len(args) and args[i] != "--":
        arg = args[i]
        if arg in ("-i", "--identity") and i + 1 < len(args) and identity is None:
            identity = Path(args[i + 1])
            i += 2
            continue
        if arg.startswith("--identity=") and identity is None:
            identity = Path(arg.removeprefix("--identity="))
        elif arg and not arg.startswith("-") and ref is None:
            ref = arg
        else:
            return None
        i += 1
    if ref is None:
        return None
    return ref, identity, args[i + 1 :]


def fast_path(argv: list[str]) -> Callable[[], int] | None:
    """``kawa ssh`` and ``kawa proxy`` command lines simple enough to run without typer
    (anything else, ``--help`` included, goes through the full CLI)."""
    if argv[:1] == ["ssh"]:
        parsed = _parse_ssh(argv[1:])
        if parsed is not None:
            return lambda: run_ssh(*parsed)
    elif argv[:1] == ["proxy"] and len(argv) == 3:
        task_id, port = argv[1], argv[2]
        if task_id and not task_id.startswith("-") and port.isdigit() and 0 < int(port) < 65536:
            return lambda: run_proxy(task_id, int(port))
    return None
