"""The ssh command lines of ``kawa ssh`` (docs/vps.md): options, identities, the
``ProxyCommand`` helpers, and which command lines take the quick path. No I/O beyond
``ssh -G``; imports nothing heavy."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:

    pass

KNOWN_HOSTS = "~/.ssh/kawa_known_hosts"


_VALUE_OPTIONS = frozenset("BbcDEeFIiJLlmOopQRSWw")
"""ssh's one-letter options that take a value (the next argument when not attached)."""


_OWN_PROXY = ("proxycommand", "proxyjump", "proxyusefdpass")
"""ssh options that change how ssh connects: with them, ssh runs ``kawa proxy`` as before."""


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


def own_proxy(options: list[str]) -> bool:
    """Whether the user's ssh options choose how to connect (-J, ProxyCommand, …)."""
    for i, arg in enumerate(options):
        if arg.startswith("-J"):
            return True
        if arg.startswith("-o"):
            value = arg[2:] or (options[i + 1] if i + 1 < len(options) else "")
            if value.strip().lower().startswith(_OWN_PROXY):
                return True
    return False


def outlives(argv: list[str]) -> bool:
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


def plain_ref(arg: str) -> bool:
    """Whether ``arg`` is a task id or id prefix as typed (digits): the quick paths take
    only those; anything else goes to the full CLI, which says what is wrong with it."""
    return arg.isascii() and arg.isdigit()


def parse_ssh(args: list[str]) -> tuple[str, Path | None, list[str]] | None:
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
        elif plain_ref(arg) and ref is None:
            ref = arg
        else:
            return None
        i += 1
    if ref is None:
        return None
    return ref, identity, args[i + 1 :]
