"""Runs tasks directly on the node's OS, each in cgroups of its own.

Where systemd is PID 1 a task is a transient scope (``systemd-run --scope``); elsewhere
the executor makes the cgroups itself (v2 or v1, see :mod:`kawa.runner.cgroups`) under
``<cgroup_parent>/<node>/<task>``. Either way the task's processes are found, frozen and
killed through that group, and its exit status is also written to a file by the wrapper
(:mod:`kawa.runner.native_command`) so a restarted runner can still report it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kawa.protocol.runner_api import RunTask
from kawa.runner import native_command as nc
from kawa.runner import native_launch as launch
from kawa.runner import task_tools
from kawa.runner.cgroups import CgroupError, Group, Layout
from kawa.runner.deadlines import Deadlines
from kawa.runner.executor import (
    OnEnd,
    StartError,
    UnknownTask,
    launch_failure,
    record_ending,
)
from kawa.runner.journal import Entry, Journal, JournalClosed

log = logging.getLogger(__name__)


@dataclass
class _Running:
    group: Group
    proc: subprocess.Popen[bytes] | None
    """None for a task adopted after a restart (no child to wait on)."""


class NativeExecutor:
    def __init__(
        self,
        journal: Journal,
        node: str,
        log_dir: Path,
        on_end: OnEnd,
        shared_data: Path | None = None,
        local_temp: Path | None = None,
        *,
        state_dir: Path | None = None,
        native_user: str | None = None,
        cgroup_parent: str = "kawa",
        cgroup_root: Path | None = None,
        use_systemd: bool | None = None,
        kawa_program: Path | None = None,
    ) -> None:
        self.journal = journal
        self.kawa_program = kawa_program
        """The standalone sweep program: its directory joins PATH where no kawa is."""
        self.node = node
        self.log_dir = log_dir
        self.on_end = on_end
        self.shared_data = shared_data
        self.local_temp = local_temp
        self.state_dir = state_dir or log_dir / ".native-status"
        self.native_user = native_user
        self.parent = f"{cgroup_parent.strip('/')}/{node}"
        self.systemd = launch.systemd_is_init() if use_systemd is None else use_systemd
        self.layout = Layout.detect(root=cgroup_root)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._tasks: dict[str, _Running] = {}
        self._deadlines = Deadlines(self._time_out)

    def log_path(self, task_id: str, stream: str) -> Path:
        return self.log_dir / f"{task_id}.{'out' if stream == 'stdout' else 'err'}"

    def status_path(self, task_id: str) -> Path:
        return self.state_dir / f"{task_id}.status"

    def group(self, task_id: str) -> Group:
        """The group a task of this executor runs in (direct cgroup mode)."""
        return Group(self.layout, f"{self.parent}/{task_id}")

    # -- start ----------------------------------------------------------------------
    def start(self, order: RunTask) -> None:
        existing = self.journal.get(order.task_id)
        if existing is not None and existing.state != "ended":
            return  # a repeated dispatch of a task that is already running here
        if existing is not None:
            raise StartError(f"task {order.task_id} already ran on {self.node}")
        user = launch.check_order(order, self.node, self.native_user)
        env = nc.task_environment(
            order, self.node, user=user, local_temp=self.local_temp, shared_data=self.shared_data
        )
        env["PATH"] = task_tools.native_path(env["PATH"], self.kawa_program)
        launch.check_program(order, self.node, env)
        self.journal.begin(order)
        try:
            running = self._spawn(order, user, env)
        except StartError:
            self.journal.forget(order.task_id)
            raise
        except Exception as exc:
            log.exception("unexpected failure starting native task %s", order.task_id)
            self.journal.forget(order.task_id)
            raise StartError(f"the native task could not start: {exc}") from None
        self._tasks[order.task_id] = running
        self.journal.set_state(order.task_id, "running")
        self._deadlines.arm(order.task_id, order.timeout)
        self._watch(order.task_id, running)

    def _spawn(self, order: RunTask, user: nc.RunAs | None, env: dict[str, str]) -> _Running:
        task_id, status = order.task_id, self.status_path(order.task_id)
        status.unlink(missing_ok=True)
        numactl = shutil.which("numactl")
        out, err = self.log_path(task_id, "stdout"), self.log_path(task_id, "stderr")
        cwd = order.workdir or "/"
        group: Group | None = None
        proc: subprocess.Popen[bytes] | None = None
        try:
            if self.systemd:
                argv = nc.systemd_run_command(order, status_file=status, user=user, numactl=numactl)
                unit = nc.unit_name(task_id) + ".scope"
                self.journal.set_native(task_id, f"kawa.slice/{unit}")  # until systemd says
                proc = launch.spawn(argv, env, cwd, out, err)
                group = Group(self.layout, launch.scope_cgroup(unit, proc, status, err))
                self.journal.set_native(task_id, group.rel, proc.pid)
                return _Running(group, proc)
            group = self.group(task_id)
            self.journal.set_native(task_id, group.rel)
            try:
                group.create(launch.limits_for(order))
            except CgroupError as exc:
                group = None  # create() removed what it made
                raise StartError(f"the node refused the task's limits: {exc}") from None
            inner = nc.inner_command(order, user=user, numactl=numactl)
            argv = nc.wrapped(status, group.procs_files(), inner)
            proc = launch.spawn(argv, env, cwd, out, err)
            self.journal.set_native(task_id, group.rel, proc.pid)
            launch.confirm_joined(proc, group, status, err)
            return _Running(group, proc)
        except BaseException:
            launch.cleanup(group, proc, owned=not self.systemd)
            raise

    # -- watching -------------------------------------------------------------------
    def _watch(self, task_id: str, running: _Running) -> None:
        threading.Thread(
            target=self._follow, args=(task_id, running), name=f"watch-{task_id}", daemon=True
        ).start()

    def _follow(self, task_id: str, running: _Running) -> None:
        if running.proc is not None:
            code: int | None = running.proc.wait()
            if code is not None and code < 0:  # killed by a signal: report as a shell does
                code = 128 - code
        else:  # adopted: no child of ours, so watch the group empty out
            while running.group.pids():
                time.sleep(0.1)
            code = nc.read_status(self.status_path(task_id))
        self._settle(task_id, running, code)

    def _settle(self, task_id: str, running: _Running, code: int | None) -> None:
        """Kill what the task left behind, remove its group, journal and report it."""
        group = running.group
        oom = code in (137, None) and group.oom_kills() > 0
        try:
            group.kill_all()
            if not self.systemd:
                group.remove()
        except CgroupError as exc:
            log.warning("cleaning up after task %s: %s", task_id, exc)
        self._tasks.pop(task_id, None)
        error = None
        if code is None and not oom:
            error = "the task ended while the runner was down and left no exit status"
        elif code:
            out, err = self.log_path(task_id, "stdout"), self.log_path(task_id, "stderr")
            error = launch_failure(code, out, err)
        self._ended(task_id, code, oom, error)

    def _ended(self, task_id: str, code: int | None, oom: bool, error: str | None) -> None:
        """Journal the ending, drop the status file, then report it. When the runner is
        stopping (its journal closed) the file stays and the next start settles the task."""
        self._deadlines.cancel(task_id)
        status = self.status_path(task_id)
        try:
            record_ending(
                self.journal,
                self.on_end,
                task_id,
                code,
                oom,
                error,
                journaled=lambda: status.unlink(missing_ok=True),
            )
        except JournalClosed:
            log.info("task %s ended as the runner stopped; its next start reports it", task_id)

    # -- control --------------------------------------------------------------------
    def _running(self, task_id: str) -> _Running:
        entry = self.journal.get(task_id)
        running = self._tasks.get(task_id)
        if entry is None or entry.state == "ended" or running is None:
            raise UnknownTask(f"task {task_id} is not running on {self.node}")
        return running

    def _control(self, task_id: str, action: str) -> None:
        running = self._running(task_id)
        group = running.group
        try:
            if action == "kill":
                if self.systemd:
                    launch.systemctl("kill", "--signal=SIGKILL", nc.unit_name(task_id) + ".scope")
                group.kill_all()
            elif self.systemd and launch.systemctl(action, nc.unit_name(task_id) + ".scope"):
                pass
            elif group.can_freeze:
                group.freeze() if action == "freeze" else group.thaw()
            else:  # no freezer: stop or continue every process of the task
                sig = signal.SIGSTOP if action == "freeze" else signal.SIGCONT
                for pid in group.pids():
                    os.kill(pid, sig)
        except (CgroupError, ProcessLookupError) as exc:
            if task_id not in self._tasks:
                raise UnknownTask(f"task {task_id} ended meanwhile") from None
            raise UnknownTask(f"cannot {action} task {task_id}: {exc}") from None

    def kill(self, task_id: str) -> None:
        self._running(task_id)
        self.journal.mark(task_id, kill=True)
        self._control(task_id, "kill")

    def pause(self, task_id: str) -> None:
        self._control(task_id, "freeze")
        self.journal.set_state(task_id, "paused")

    def resume(self, task_id: str) -> None:
        self._control(task_id, "thaw")
        self.journal.set_state(task_id, "running")

    def _time_out(self, task_id: str) -> None:
        if task_id not in self._tasks:
            return
        self.journal.mark(task_id, timeout=True)
        with contextlib.suppress(UnknownTask):
            self._control(task_id, "kill")

    # -- after a runner restart -----------------------------------------------------
    def adopt(self, entries: list[Entry]) -> None:
        """Re-watch native tasks still running, settle those that ended meanwhile (with
        the code their wrapper wrote), and kill groups the journal does not know."""
        known: set[str] = set()
        for entry in entries:
            if not entry.order.native:
                continue
            known.add(entry.task_id)
            record = self.journal.native(entry.task_id)
            if record is None or record.cgroup is None:
                self._ended(entry.task_id, None, False, "the runner stopped while starting it")
                continue
            running = _Running(Group(self.layout, record.cgroup), None)
            if not running.group.pids():
                code = nc.read_status(self.status_path(entry.task_id))
                self._settle(entry.task_id, running, code)
                continue
            self._tasks[entry.task_id] = running
            paused = running.group.can_freeze and running.group.frozen()
            self.journal.set_state(entry.task_id, "paused" if paused else "running")
            elapsed = (datetime.now(UTC) - record.started_at).total_seconds()
            self._deadlines.arm(entry.task_id, entry.order.timeout, elapsed)
            self._watch(entry.task_id, running)
            log.info("re-adopted native task %s", entry.task_id)
        if self.systemd:
            return
        for name in self.layout.children(self.parent):
            if name not in known and name not in self._tasks:
                log.warning("removing cgroup %s/%s of an unknown task", self.parent, name)
                launch.cleanup(self.group(name), None, owned=True)
