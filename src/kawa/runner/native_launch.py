"""Starting a native task: checks, limits, the spawn itself, and undoing a failed start."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

from kawa.protocol.runner_api import RunTask
from kawa.runner import native_command as nc
from kawa.runner.cgroups import CgroupError, Group, Limits
from kawa.runner.executor import StartError

log = logging.getLogger(__name__)
JOIN_TIMEOUT = 10.0


def systemd_is_init() -> bool:
    try:
        return Path("/proc/1/comm").read_text().strip() == "systemd"
    except OSError:
        return False


def check_order(order: RunTask, node: str, native_user: str | None) -> nc.RunAs | None:
    """Refuse what a native task cannot do, before anything is journaled or made."""
    if not order.command:
        raise StartError("a native task needs a command")
    if order.gpu_ids:
        raise StartError("native tasks cannot use GPUs; run the task in a container")
    if order.mounts:
        raise StartError("native tasks see the node's filesystem: --mount needs a container")
    try:
        user = nc.resolve_user(native_user)
    except ValueError as exc:
        raise StartError(str(exc)) from None
    if user is not None and shutil.which("setpriv") is None:
        raise StartError("native_user is set but setpriv is not installed on this node")
    if order.workdir and not Path(order.workdir).is_dir():
        raise StartError(f"working directory {order.workdir} does not exist on {node}")
    return user


def check_program(order: RunTask, node: str, env: dict[str, str]) -> None:
    program = order.command[0]
    if "/" in program:
        found = os.access(Path(order.workdir or "/", program), os.X_OK)
    else:
        found = shutil.which(program, path=env["PATH"]) is not None
    if not found:
        raise StartError(f"command {program!r} not found on {node}")


def limits_for(order: RunTask, sysfs: Path = Path("/sys")) -> Limits:
    """The cgroup limits of ``order``. Memory is bound to its NUMA node only when this
    machine has that node (recorded test topologies name nodes it lacks)."""
    numa = order.numa
    mems: tuple[int, ...] = ()
    if numa is not None and (sysfs / f"devices/system/node/node{numa}").is_dir():
        mems = (numa,)
    return Limits(
        cores=order.cores or None, memory=order.memory, cpus=tuple(order.cpuset), mems=mems
    )


def spawn(
    argv: list[str], env: dict[str, str], cwd: str, out: Path, err: Path
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a session of its own, its output going to ``out`` and ``err``."""
    with out.open("wb") as stdout, err.open("wb") as stderr:
        try:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as exc:
            raise StartError(f"cannot start the task: {exc}") from None


def confirm_joined(proc: subprocess.Popen[bytes], group: Group, status: Path, stderr: Path) -> None:
    """Wait until the wrapper is in every hierarchy of its group (or has ended)."""
    deadline = time.monotonic() + JOIN_TIMEOUT
    while not all(str(proc.pid) in text(f).split() for f in group.procs_files()):
        if proc.poll() is not None:
            if text(status) == nc.JOIN_FAILED:
                raise StartError(f"the task could not join its cgroup: {text(stderr)[-300:]}")
            return  # it ran, and ended already
        if time.monotonic() > deadline:
            raise StartError(f"the task did not join its cgroup {group.rel} in time")
        time.sleep(0.001)


def scope_cgroup(unit: str, proc: subprocess.Popen[bytes], status: Path, stderr: Path) -> str:
    """The cgroup systemd made for a task's scope, asked until the scope exists."""
    deadline = time.monotonic() + JOIN_TIMEOUT
    while time.monotonic() < deadline:
        shown = subprocess.run(
            ["systemctl", "show", "-P", "ControlGroup", unit],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if shown:
            return shown
        code = proc.poll()
        if code is not None:
            if code != 0 and not status.exists():
                raise StartError(f"systemd-run refused the task: {text(stderr)[-500:]}")
            break  # it ran and ended before we looked: the scope is gone
        time.sleep(0.01)
    return f"kawa.slice/{unit}"


def systemctl(*args: str) -> bool:
    done = subprocess.run(["systemctl", *args], capture_output=True, check=False)
    return done.returncode == 0


def cleanup(group: Group | None, proc: subprocess.Popen[bytes] | None, owned: bool) -> None:
    """Undo a start that failed half-way: no process and no group may stay behind."""
    if group is not None:
        try:
            group.kill_all()
        except CgroupError as exc:
            log.warning("cleanup of %s: %s", group.rel, exc)
    if proc is not None:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    if group is not None and owned:
        try:
            group.remove()
        except CgroupError as exc:
            log.warning("cleanup of %s: %s", group.rel, exc)


def text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""
