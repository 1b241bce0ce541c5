"""Native tasks on this machine's real cgroups: the NativeExecutor driven directly, with a
real journal, as the runner drives it. Needs root and cgroups: skipped without them,
but under CI=true their absence is a failure."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kawa.protocol.runner_api import ExitKind, RunTask
from kawa.runner.cgroups import CgroupError, Group, Layout, Limits
from kawa.runner.executor import StartError, UnknownTask
from kawa.runner.journal import Journal
from kawa.runner.native_executor import NativeExecutor
from tests.integration.cluster import eventually
from tests.support import run_order

NODE = "node1"
MiB = 1024 * 1024
Ending = tuple[ExitKind, "int | None", "str | None"]


def cgroups_ready() -> str | None:
    """None when this process can make cgroups with the limits native tasks use."""
    if os.geteuid() != 0:
        return "native tasks need root to manage cgroups"
    try:
        layout = Layout.detect()
        if layout.version == 1:
            missing = {"cpu", "memory", "cpuset", "freezer"} - set(layout.roots)
        else:
            have = (layout.roots["unified"] / "cgroup.controllers").read_text().split()
            missing = {"cpu", "memory", "cpuset"} - set(have)
        if missing:
            return f"cgroup controllers {sorted(missing)} are not available"
        probe = Group(layout, f"kawa-probe-{secrets.token_hex(4)}")
        probe.create(Limits())
        probe.remove()
    except (CgroupError, OSError) as exc:
        return f"cannot manage cgroups here: {exc}"
    return None


@pytest.fixture(scope="module")
def cgroups_available() -> None:
    problem = cgroups_ready()
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{problem} (CI=true: native tests must run)")
    pytest.skip(problem)


@dataclass
class Harness:
    root: Path
    parent: str
    journal: Journal
    executor: NativeExecutor = field(init=False)
    ends: dict[str, Ending] = field(default_factory=dict)
    events: dict[str, threading.Event] = field(default_factory=dict)
    status_at_end: dict[str, bool] = field(default_factory=dict)
    count: int = 0

    def __post_init__(self) -> None:
        self.executor = self.new_executor()

    def new_executor(self, **kwargs: Any) -> NativeExecutor:
        return NativeExecutor(
            self.journal,
            NODE,
            self.root / "logs",
            self.on_end,
            local_temp=self.root / "local_temp",
            state_dir=self.root / "native",
            cgroup_parent=self.parent,
            use_systemd=False,
            **kwargs,
        )

    def on_end(self, task_id: str, kind: ExitKind, code: int | None, error: str | None) -> None:
        assert task_id not in self.ends, f"{task_id} reported twice"
        self.ends[task_id] = (kind, code, error)
        self.status_at_end[task_id] = self.executor.status_path(task_id).exists()
        self.event(task_id).set()

    def event(self, task_id: str) -> threading.Event:
        return self.events.setdefault(task_id, threading.Event())

    def order(self, command: list[str], **fields: Any) -> RunTask:
        self.count += 1
        task_id = f"t{self.count}-{secrets.token_hex(3)}"
        return run_order(**{"task_id": task_id, "command": command, "native": True} | fields)

    def start(self, command: list[str], **fields: Any) -> str:
        order = self.order(command, **fields)
        self.event(order.task_id)
        self.executor.start(order)
        return order.task_id

    def wait(self, task_id: str, timeout: float = 30.0) -> Ending:
        assert self.event(task_id).wait(timeout), f"task {task_id} did not end in {timeout}s"
        return self.ends[task_id]

    def out(self, task_id: str, stream: str = "stdout") -> str:
        return self.executor.log_path(task_id, stream).read_text()

    def group(self, task_id: str) -> Group:
        return self.executor.group(task_id)

    def close(self) -> None:
        layout = self.executor.layout
        for name in layout.children(f"{self.parent}/{NODE}"):
            leftover = Group(layout, f"{self.parent}/{NODE}/{name}")
            leftover.kill_all()
            if name in self.events:
                self.event(name).wait(10)
            leftover.remove()
        Group(layout, f"{self.parent}/{NODE}").remove()
        Group(layout, self.parent).remove()
        self.journal.close()


@pytest.fixture
def native(cgroups_available: None, tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path, f"kawa-test-{secrets.token_hex(4)}", Journal(tmp_path / "j.sqlite"))
    try:
        yield h
    finally:
        h.close()


def gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie waiting to be reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def groups_seen(proc_cgroup: list[str]) -> dict[str, str]:
    """controller -> group, from the lines of a ``/proc/PID/cgroup``."""
    seen: dict[str, str] = {}
    for line in proc_cgroup:
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(","):
            seen[name] = path
    return seen


def wait_for(path: Path) -> str:
    """Shell that waits (in the task) until ``path`` exists."""
    return f"while [ ! -e '{path}' ]; do sleep 0.02; done"


# -- running, output, environment ---------------------------------------------------


def test_echo_exit_code_and_output_files(native: Harness) -> None:
    task = native.start(["sh", "-c", "echo hello; echo oops >&2; exit 3"])
    assert native.wait(task) == (ExitKind.EXITED, 3, None)
    assert native.out(task) == "hello\n"
    assert native.out(task, "stderr") == "oops\n"
    assert not native.group(task).exists()
    assert native.status_at_end[task] is False  # gone before the ending was reported
    assert not native.executor.status_path(task).exists()
    entry = native.journal.get(task)
    assert entry is not None and entry.state == "ended" and entry.exit_code == 3


def test_env_and_workdir_and_no_runner_secrets(
    native: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAWA_RUNNER_CLUSTER_SECRET", "not-for-tasks")
    workdir = tmp_path / "work dir"
    workdir.mkdir()
    script = (
        'echo "$GREETING|$KAWA_TASK_ID|$KAWA_NODE|$KAWA_LOCAL_TEMP'
        '|${KAWA_RUNNER_CLUSTER_SECRET-unset}"; pwd'
    )
    task = native.start(["sh", "-c", script], env={"GREETING": "hi there"}, workdir=str(workdir))
    assert native.wait(task) == (ExitKind.EXITED, 0, None)
    first, second = native.out(task).splitlines()
    assert first == f"hi there|{task}|{NODE}|{tmp_path / 'local_temp'}|unset"
    assert second == str(workdir)


def test_native_user_drops_privileges(native: Harness) -> None:
    native.executor = native.new_executor(native_user="nobody")
    task = native.start(["sh", "-c", 'id -u; echo "$USER"'])
    assert native.wait(task) == (ExitKind.EXITED, 0, None)
    assert native.out(task).split() == ["65534", "nobody"]


# -- limits ---------------------------------------------------------------------------


def test_memory_max_kills_a_hog(native: Harness) -> None:
    hog = [sys.executable, "-c", "b = bytearray(400_000_000)"]
    task = native.start(hog, memory=64 * MiB)
    kind, code, error = native.wait(task)
    assert (kind, code) == (ExitKind.OOM_KILLED, 137)
    assert error and "OOM" in error
    assert not native.group(task).exists()


def test_cpu_quota_and_memory_max_in_the_cgroup_files(native: Harness, tmp_path: Path) -> None:
    go = tmp_path / "go"
    command = ["sh", "-c", f"cat /proc/self/cgroup; {wait_for(go)}"]
    task = native.start(command, cores=1, memory=64 * MiB)
    group = native.group(task)
    lines = eventually(lambda: native.out(task).splitlines(), 10, "the task's /proc/self/cgroup")
    layout = group.layout
    if layout.version == 1:
        cpu, memory = layout.roots["cpu"] / group.rel, layout.roots["memory"] / group.rel
        assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "100000"
        assert (cpu / "cpu.cfs_period_us").read_text().strip() == "100000"
        assert (memory / "memory.limit_in_bytes").read_text().strip() == str(64 * MiB)
        if (memory / "memory.memsw.limit_in_bytes").exists():
            assert (memory / "memory.memsw.limit_in_bytes").read_text().strip() == str(64 * MiB)
        seen = {
            c: path for _, cs, path in (ln.split(":", 2) for ln in lines) for c in cs.split(",")
        }
        for controller in ("cpu", "memory", "cpuset", "freezer"):
            assert seen[controller] == f"/{group.rel}", lines
    else:
        leaf = layout.roots["unified"] / group.rel
        assert (leaf / "cpu.max").read_text().split() == ["100000", "100000"]
        assert (leaf / "memory.max").read_text().strip() == str(64 * MiB)
        assert f"0::/{group.rel}" in lines
    go.touch()
    assert native.wait(task) == (ExitKind.EXITED, 0, None)


def test_cpuset_restricts_the_task(native: Harness) -> None:
    pinned = max(os.sched_getaffinity(0))
    show = (
        "import os, re; print(sorted(os.sched_getaffinity(0)));"
        " print(re.search(r'Mems_allowed_list:\\s*(\\S+)', open('/proc/self/status').read())[1])"
    )
    task = native.start([sys.executable, "-c", show], cpuset=[pinned], numa=0)
    assert native.wait(task) == (ExitKind.EXITED, 0, None)
    assert native.out(task).split() == [f"[{pinned}]", "0"]


def test_limits_the_kernel_refuses_fail_the_start_cleanly(native: Harness) -> None:
    order = native.order(["sleep", "30"], cpuset=[0, 999])
    with pytest.raises(StartError) as refused:
        native.executor.start(order)
    message = str(refused.value)
    assert "cpuset.cpus" in message and "0,999" in message, message
    assert native.journal.get(order.task_id) is None
    assert not native.group(order.task_id).exists()
    assert native.executor.layout.children(f"{native.parent}/{NODE}") == []
    # nothing was left behind, so the same task can be dispatched again with sane limits
    fixed = order.model_copy(update={"cpuset": [0], "command": ["true"]})
    native.executor.start(fixed)
    assert native.wait(order.task_id) == (ExitKind.EXITED, 0, None)


def test_bad_orders_are_refused_before_anything_runs(native: Harness) -> None:
    for command, fields, words in (
        (["true"], {"gpu_ids": [0]}, "GPUs"),
        (["no-such-program-kawa"], {}, "not found"),
        (["true"], {"workdir": "/no/such/dir"}, "does not exist"),
    ):
        order = native.order(command, **fields)
        with pytest.raises(StartError, match=words):
            native.executor.start(order)
        assert native.journal.get(order.task_id) is None
    native.executor = native.new_executor(native_user="no-such-user-kawa")
    with pytest.raises(StartError, match="does not exist"):
        native.executor.start(native.order(["true"]))


# -- control --------------------------------------------------------------------------

TREE = 'sh -c "while :; do echo x >> {counter}; sleep 0.02; done" & sleep 300 & wait'


def test_pause_and_resume_a_process_tree(native: Harness, tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    task = native.start(["sh", "-c", TREE.format(counter=counter)])
    eventually(lambda: counter.exists() and counter.stat().st_size > 0, 10, "the counter")
    native.executor.pause(task)
    assert native.group(task).frozen()
    assert native.journal.get(task).state == "paused"  # type: ignore[union-attr]
    size = counter.stat().st_size
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:  # frozen: not one more line in half a second
        assert counter.stat().st_size == size
        time.sleep(0.05)
    native.executor.resume(task)
    assert native.journal.get(task).state == "running"  # type: ignore[union-attr]
    eventually(lambda: counter.stat().st_size > size, 10, "the counter to grow again")
    native.executor.kill(task)
    assert native.wait(task)[0] is ExitKind.KILLED


def test_pause_catches_a_shell_in_vfork(native: Harness) -> None:
    """A shell starting commands back to back spends its time in vfork(), where a freeze
    asked once can leave it asleep unfrozen behind its frozen child (about one pause in
    twenty, without the freezer being asked again); every pause must complete."""
    task = native.start(["sh", "-c", "while :; do /bin/true; done"])
    group = native.group(task)
    eventually(lambda: len(group.pids()) >= 2, 10, "the loop's children")
    for _ in range(100):
        native.executor.pause(task)
        assert group.frozen()
        native.executor.resume(task)
        assert not group.frozen()
    native.executor.kill(task)
    assert native.wait(task)[0] is ExitKind.KILLED


def test_kill_of_a_process_tree_leaves_no_process(native: Harness) -> None:
    tree = "setsid sh -c 'trap \"\" TERM HUP; sleep 300' & sleep 300 & wait"
    task = native.start(["sh", "-c", tree])
    group = native.group(task)

    def whole_tree() -> list[int] | None:
        found = group.pids()
        return found if len(found) >= 5 else None  # wrapper, sh, setsid sh, two sleeps

    pids = eventually(whole_tree, 10, "the process tree")
    native.executor.kill(task)
    kind, code, _ = native.wait(task)
    assert (kind, code) == (ExitKind.KILLED, 137)
    assert all(gone(pid) for pid in pids)
    assert not group.exists()
    with pytest.raises(UnknownTask):
        native.executor.kill(task)


def test_kill_while_paused(native: Harness, tmp_path: Path) -> None:
    task = native.start(["sleep", "300"])
    native.executor.pause(task)
    native.executor.kill(task)
    assert native.wait(task)[0] is ExitKind.KILLED


def test_timeout(native: Harness) -> None:
    task = native.start(["sleep", "300"], timeout=0.3)
    kind, code, error = native.wait(task)
    assert (kind, code, error) == (ExitKind.TIMED_OUT, 137, "timed out after 0.3s")
    assert not native.group(task).exists()


# -- runner restarts ------------------------------------------------------------------

OLD_RUNNER = """
import json, sys
from pathlib import Path
from kawa.protocol.runner_api import RunTask
from kawa.runner.journal import Journal
from kawa.runner.native_executor import NativeExecutor

cfg = json.loads(sys.argv[1])
root = Path(cfg["root"])
ex = NativeExecutor(
    Journal(root / "j.sqlite"), cfg["node"], root / "logs", lambda *a: None,
    local_temp=root / "local_temp", state_dir=root / "native",
    cgroup_parent=cfg["parent"], use_systemd=False,
)
for order in cfg["orders"]:
    ex.start(RunTask.model_validate(order))
print("started", flush=True)
sys.stdin.read()
"""


def test_a_restarted_runner_adopts_running_tasks_and_reports_exit_codes(
    native: Harness, tmp_path: Path
) -> None:
    go_a, go_b = tmp_path / "go-a", tmp_path / "go-b"
    a = native.order(["sh", "-c", f"{wait_for(go_a)}; echo a; exit 7"])
    b = native.order(["sh", "-c", f"{wait_for(go_b)}; exit 3"])
    cfg = {
        "root": str(tmp_path),
        "node": NODE,
        "parent": native.parent,
        "orders": [a.model_dump(mode="json"), b.model_dump(mode="json")],
    }
    with subprocess.Popen(
        [sys.executable, "-c", OLD_RUNNER, json.dumps(cfg)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as old:
        assert old.stdout is not None and old.stdout.readline() == "started\n"
        old.send_signal(signal.SIGKILL)  # the runner dies; its tasks must not
    assert native.group(a.task_id).pids() and native.group(b.task_id).pids()

    go_b.touch()  # b ends while no runner watches it
    eventually(lambda: not native.group(b.task_id).pids(), 10, "task b to end")
    native.executor.adopt(native.journal.live())
    assert native.ends[b.task_id] == (ExitKind.EXITED, 3, None)
    assert not native.group(b.task_id).exists()

    native.executor.pause(a.task_id)  # an adopted task is controlled like any other
    native.executor.resume(a.task_id)
    go_a.touch()
    assert native.wait(a.task_id) == (ExitKind.EXITED, 7, None)
    assert native.out(a.task_id) == "a\n"
    assert not native.group(a.task_id).exists()


def test_a_task_ending_as_the_runner_stops_is_reported_by_its_next_start(
    native: Harness, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    task = native.start(["sh", "-c", f"{wait_for(go)}; exit 5"])
    assert native.group(task).pids()
    native.journal.close()  # the runner stops; its task ends just after
    go.touch()
    watcher = f"watch-{task}"
    eventually(
        lambda: not any(t.name == watcher for t in threading.enumerate()), 10, "the watcher"
    )
    assert task not in native.ends
    assert native.executor.status_path(task).exists()  # kept for the next start

    native.journal = Journal(tmp_path / "j.sqlite")
    native.executor = native.new_executor()
    native.executor.adopt(native.journal.live())
    assert native.wait(task) == (ExitKind.EXITED, 5, None)
    assert not native.executor.status_path(task).exists()


def test_adopt_kills_groups_the_journal_does_not_know(native: Harness) -> None:
    stray = native.group("stray")
    stray.create(Limits())
    with subprocess.Popen(["sleep", "300"]) as proc:
        stray.add(proc.pid)
        native.executor.adopt([])
        assert proc.wait(10) == -signal.SIGKILL
    assert not stray.exists()


# -- the cgroup v2 driver, on the unified hierarchy this machine has ------------------


def test_cgroup_v2_freeze_kill_and_refusals(cgroups_available: None) -> None:
    layout = Layout.detect()
    if layout.version == 1:
        mounts = Path("/proc/self/mounts").read_text().split("\n")
        unified = [ln.split()[1] for ln in mounts if " cgroup2 " in ln]
        if not unified:
            pytest.skip("no cgroup2 hierarchy mounted next to v1")
        layout = Layout.detect(root=Path(unified[0]))
    assert layout.version == 2
    parent = f"kawa-test-{secrets.token_hex(4)}"
    group = Group(layout, f"{parent}/v2/task")
    group.create(Limits())
    try:
        with subprocess.Popen(["sleep", "300"]) as proc:
            group.add(proc.pid)
            assert group.pids() == [proc.pid]
            group.freeze()
            assert group.frozen()
            group.thaw()
            assert not group.frozen()
            group.kill_all()
            assert proc.wait(10) == -signal.SIGKILL
        assert group.pids() == []
        controllers = (layout.roots["unified"] / "cgroup.controllers").read_text().split()
        if "memory" not in controllers:  # a hybrid node: v1 owns the memory controller
            refused = Group(layout, f"{parent}/v2/limited")
            with pytest.raises(CgroupError, match=r"memory\.max"):
                refused.create(Limits(memory=64 * MiB))
            assert not refused.exists()
    finally:
        group.remove()
        Group(layout, f"{parent}/v2").remove()
        Group(layout, parent).remove()
