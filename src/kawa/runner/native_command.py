"""Command lines and environments of native tasks. Pure: nothing here starts a process.

Every native task runs under a small ``sh`` wrapper that (1) writes its own pid into
the task's cgroups before anything of the user runs, so no child can escape them,
(2) runs the command (through ``numactl`` and ``setpriv`` when asked), and (3) writes
the exit status to a file, so the code survives a runner restart.
"""

from __future__ import annotations

import os
import pwd
import re
from dataclasses import dataclass
from pathlib import Path

from kawa.protocol.runner_api import RunTask

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
JOIN_FAILED = "cgroup"
"""What the wrapper writes to the status file when it cannot join a cgroup."""
JOIN_FAILED_CODE = 125

WRAPPER = f"""status=$1; n=$2; shift 2
while [ "$n" -gt 0 ]; do
  if ! echo $$ > "$1"; then
    echo "kawa-native: cannot join cgroup $1" >&2
    echo {JOIN_FAILED} > "$status"; exit {JOIN_FAILED_CODE}
  fi
  n=$((n - 1)); shift
done
"$@"
code=$?
echo "$code" > "$status"
exit "$code"
"""


@dataclass(frozen=True)
class RunAs:
    """The account a native task runs as."""

    name: str
    uid: int
    gid: int
    home: str


def resolve_user(name: str | None) -> RunAs | None:
    """The account ``name`` (None: the runner's own); ValueError if it does not exist."""
    if not name:
        return None
    try:
        entry = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except KeyError:
        raise ValueError(f"native_user {name!r} does not exist on this node") from None
    return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)


def task_environment(
    order: RunTask,
    node: str,
    *,
    user: RunAs | None,
    local_temp: Path | None = None,
    shared_data: Path | None = None,
) -> dict[str, str]:
    """A clean environment: never the runner's own (it holds the cluster secret)."""
    if user is None:
        me = pwd.getpwuid(os.getuid())
        user = RunAs(me.pw_name, me.pw_uid, me.pw_gid, me.pw_dir)
    env = {
        "PATH": os.environ.get("PATH") or DEFAULT_PATH,
        "HOME": user.home,
        "USER": user.name,
        "LOGNAME": user.name,
        "LANG": os.environ.get("LANG", "C.UTF-8"),
    }
    env.update(order.env)
    env.update(KAWA_TASK_ID=order.task_id, KAWA_NODE=node)
    if local_temp is not None:
        env["KAWA_LOCAL_TEMP"] = str(local_temp)
    if shared_data is not None:
        env["KAWA_SHARED_DATA"] = str(shared_data)
    return env


def inner_command(
    order: RunTask,
    *,
    user: RunAs | None = None,
    numactl: str | None = None,
    setpriv: str = "setpriv",
) -> list[str]:
    """The user's command behind NUMA binding and the privilege drop, if any."""
    prefix: list[str] = []
    if numactl and order.numa is not None:
        prefix += [numactl, f"--cpunodebind={order.numa}", f"--membind={order.numa}"]
    if user is not None:
        prefix += [setpriv, f"--reuid={user.uid}", f"--regid={user.gid}", "--init-groups", "--"]
    return prefix + list(order.command)


def wrapped(status_file: Path, procs_files: list[Path], command: list[str]) -> list[str]:
    """``command`` under the wrapper, joining ``procs_files`` first."""
    return [
        "/bin/sh",
        "-c",
        WRAPPER,
        "kawa-native",
        str(status_file),
        str(len(procs_files)),
        *map(str, procs_files),
        *command,
    ]


def unit_name(task_id: str) -> str:
    """The systemd scope unit of a task (without the ``.scope`` suffix)."""
    return "kawa-" + re.sub(r"[^A-Za-z0-9_.:-]", "_", task_id)


def systemd_run_command(
    order: RunTask,
    *,
    status_file: Path,
    user: RunAs | None = None,
    numactl: str | None = None,
    setpriv: str = "setpriv",
    slice_name: str = "kawa.slice",
) -> list[str]:
    """The ``systemd-run --scope`` line for ``order`` where systemd is PID 1.

    In scope mode systemd-run runs the command itself, so it inherits the environment
    of the caller: the task's environment goes to the process, never onto this command
    line (which every local user can read in ``/proc/PID/cmdline``).
    """
    cmd = ["systemd-run", "--scope", "--quiet", "--collect"]
    cmd += ["--unit", unit_name(order.task_id), f"--slice={slice_name}"]
    props: list[str] = []
    if order.cores > 0:
        props.append(f"CPUQuota={order.cores * 100}%")
    if order.memory:
        props += [f"MemoryMax={order.memory}", "MemorySwapMax=0"]
    if order.cpuset:
        props.append("AllowedCPUs=" + ",".join(str(c) for c in sorted(set(order.cpuset))))
    if order.numa is not None:
        props.append(f"AllowedMemoryNodes={order.numa}")
    for prop in props:
        cmd += ["-p", prop]
    if order.workdir:
        cmd.append(f"--working-directory={order.workdir}")
    inner = inner_command(order, user=user, numactl=numactl, setpriv=setpriv)
    return [*cmd, "--", *wrapped(status_file, [], inner)]


def read_status(path: Path) -> int | None:
    """The exit code the wrapper wrote, or None (not written, or it could not join)."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
