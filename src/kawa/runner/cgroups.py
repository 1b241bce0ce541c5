"""A small cgroup driver: one task's group across the controllers it needs.

Works on cgroup v2 (one unified hierarchy) and on v1 (one hierarchy per controller,
each mounted on its own directory). The layout comes from ``/proc/self/mounts`` or,
for tests and unusual nodes, from a configured root. Every write the kernel refuses
raises :class:`CgroupError` naming the file and the value.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

V1_CONTROLLERS = ("cpu", "memory", "cpuset", "freezer", "pids")
"""v1 hierarchies a task joins (those that are mounted)."""
V2_CONTROLLERS = ("cpu", "memory", "cpuset", "pids")
CFS_PERIOD_US = 100_000


class CgroupError(Exception):
    """A cgroup operation failed; the message names the file and the value."""


@dataclass(frozen=True)
class Limits:
    cores: float | None = None
    memory: int | None = None
    cpus: tuple[int, ...] = ()
    mems: tuple[int, ...] = ()


@dataclass(frozen=True)
class Layout:
    version: int
    roots: dict[str, Path]
    """v2: ``{"unified": root}``; v1: controller -> the directory it is mounted on."""

    @classmethod
    def detect(cls, mounts: Path = Path("/proc/self/mounts"), root: Path | None = None) -> Layout:
        if root is not None:
            if (root / "cgroup.controllers").exists():
                return cls(2, {"unified": root})
            found = {c: root / c for c in V1_CONTROLLERS if (root / c).is_dir()}
            if not found:
                raise CgroupError(f"{root} is neither a cgroup2 mount nor a v1 cgroup root")
            return cls(1, found)
        v1: dict[str, Path] = {}
        v2: list[Path] = []
        for line in mounts.read_text().splitlines():
            fields = line.split()
            if len(fields) < 4:
                continue
            where = Path(_unescape(fields[1]))
            if fields[2] == "cgroup2":
                v2.append(where)
            elif fields[2] == "cgroup":
                for option in fields[3].split(","):
                    if option in V1_CONTROLLERS:
                        v1.setdefault(option, where)
        if Path("/sys/fs/cgroup") in v2:
            return cls(2, {"unified": Path("/sys/fs/cgroup")})
        if "cpu" in v1 or "memory" in v1:
            return cls(1, v1)
        if v2:
            return cls(2, {"unified": v2[0]})
        raise CgroupError("no cgroup hierarchy is mounted on this node")

    @property
    def primary(self) -> Path:
        """The hierarchy whose ``cgroup.procs`` lists a group's processes."""
        for name in ("unified", "freezer", "memory", "cpu", "pids", "cpuset"):
            if name in self.roots:
                return self.roots[name]
        raise CgroupError("no usable cgroup hierarchy")

    def children(self, rel: str) -> list[str]:
        """Names of the groups directly below ``rel`` (in the primary hierarchy)."""
        base = self.primary / rel
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if p.is_dir())


def _unescape(path: str) -> str:
    """``/proc/self/mounts`` writes spaces and tabs in paths as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        path = path.replace(code, char)
    return path


def write(path: Path, value: str) -> None:
    """One ``write(2)`` of ``value`` to a cgroup file; a refusal is a CgroupError."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError as exc:
        raise CgroupError(f"cannot open {path}: {exc.strerror}") from None
    try:
        os.write(fd, value.encode())
    except OSError as exc:
        raise CgroupError(f"the kernel refused {value!r} for {path}: {exc.strerror}") from None
    finally:
        os.close(fd)


def _read(path: Path) -> str:
    """A cgroup file's text; empty when the group is gone (or going: ENODEV)."""
    try:
        return path.read_text()
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENODEV):
            return ""
        raise


ASK_AGAIN = 0.05
"""Seconds between writes of a freeze (or thaw) request not yet complete."""


class Group:
    """A task's group: the directory ``rel`` in each hierarchy of ``layout``."""

    def __init__(self, layout: Layout, rel: str) -> None:
        self.layout = layout
        self.rel = rel.strip("/")
        seen: dict[Path, str] = {}
        for name, root in layout.roots.items():
            seen.setdefault(root, name)  # co-mounted controllers share one directory
        self.dirs = {name: root / self.rel for root, name in seen.items()}

    def _dir(self, controller: str) -> Path | None:
        if self.layout.version == 2:
            return self.dirs["unified"]
        for name, root in self.layout.roots.items():
            if name == controller:
                return root / self.rel
        return None

    # -- creation -------------------------------------------------------------------
    def create(self, limits: Limits) -> None:
        """Make the group and apply ``limits``; on failure nothing of it remains."""
        try:
            if self.layout.version == 2:
                self._create_v2(limits)
            else:
                self._create_v1(limits)
        except BaseException:
            self.remove(timeout=1.0)
            raise

    def _create_v2(self, limits: Limits) -> None:
        root = self.layout.roots["unified"]
        node = root
        for part in Path(self.rel).parts:
            available = _read(node / "cgroup.controllers").split()
            enabled = _read(node / "cgroup.subtree_control").split()
            for name in V2_CONTROLLERS:
                if name in available and name not in enabled:
                    write(node / "cgroup.subtree_control", f"+{name}")
            node = node / part
            node.mkdir(exist_ok=True)
        leaf = self.dirs["unified"]
        if limits.cores:
            write(leaf / "cpu.max", f"{int(limits.cores * CFS_PERIOD_US)} {CFS_PERIOD_US}")
        if limits.memory:
            write(leaf / "memory.max", str(limits.memory))
            if (leaf / "memory.swap.max").exists():
                write(leaf / "memory.swap.max", "0")
        if limits.cpus:
            write(leaf / "cpuset.cpus", _cpu_list(limits.cpus))
        if limits.mems:
            write(leaf / "cpuset.mems", _cpu_list(limits.mems))

    def _create_v1(self, limits: Limits) -> None:
        for name, leaf in self.dirs.items():
            root = self.layout.roots[name]
            node = root
            for part in Path(self.rel).parts:
                parent, node = node, node / part
                node.mkdir(exist_ok=True)
                if (node / "cpuset.cpus").exists():  # v1 cpusets start empty
                    for key in ("cpuset.mems", "cpuset.cpus"):
                        if node != leaf and not _read(node / key).strip():
                            write(node / key, _read(parent / key).strip())
            if (leaf / "cpuset.cpus").exists():
                parent = leaf.parent
                mems = _cpu_list(limits.mems) if limits.mems else _read(parent / "cpuset.mems")
                cpus = _cpu_list(limits.cpus) if limits.cpus else _read(parent / "cpuset.cpus")
                write(leaf / "cpuset.mems", mems.strip())
                write(leaf / "cpuset.cpus", cpus.strip())
            if limits.cores and (leaf / "cpu.cfs_quota_us").exists():
                write(leaf / "cpu.cfs_period_us", str(CFS_PERIOD_US))
                write(leaf / "cpu.cfs_quota_us", str(int(limits.cores * CFS_PERIOD_US)))
            if limits.memory and (leaf / "memory.limit_in_bytes").exists():
                write(leaf / "memory.limit_in_bytes", str(limits.memory))
                if (leaf / "memory.memsw.limit_in_bytes").exists():
                    write(leaf / "memory.memsw.limit_in_bytes", str(limits.memory))
        if limits.cores and "cpu" not in self.layout.roots:
            raise CgroupError("the cpu controller is not mounted: cannot set a CPU quota")
        if limits.memory and "memory" not in self.layout.roots:
            raise CgroupError("the memory controller is not mounted: cannot set a memory max")

    # -- membership -----------------------------------------------------------------
    def procs_files(self) -> list[Path]:
        """Every ``cgroup.procs`` a process must be written to in order to join."""
        return [d / "cgroup.procs" for d in self.dirs.values()]

    def add(self, pid: int) -> None:
        for procs in self.procs_files():
            write(procs, str(pid))

    def pids(self) -> list[int]:
        procs = self.layout.primary / self.rel / "cgroup.procs"
        return [int(p) for p in _read(procs).split()]

    def exists(self) -> bool:
        return any(d.is_dir() for d in self.dirs.values())

    # -- freezer --------------------------------------------------------------------
    @property
    def can_freeze(self) -> bool:
        return self.layout.version == 2 or "freezer" in self.layout.roots

    def frozen(self) -> bool:
        if self.layout.version == 2:
            return "frozen 1" in _read(self.dirs["unified"] / "cgroup.events")
        freezer = self._dir("freezer")
        return freezer is not None and _read(freezer / "freezer.state").strip() == "FROZEN"

    def freeze(self, timeout: float = 5.0) -> None:
        self._set_frozen(True, timeout)

    def thaw(self, timeout: float = 5.0) -> None:
        self._set_frozen(False, timeout)

    def _set_frozen(self, frozen: bool, timeout: float) -> None:
        """Freeze or thaw, waiting until the kernel says it is done. The request is
        written again while it waits: the v1 freezer asks each process once, and a shell
        in vfork() when asked sleeps unfrozen behind its frozen child; asked again, it
        freezes. A freeze that does not complete is undone before the error."""
        self._write_frozen(frozen)
        started = time.monotonic()
        asked = started
        while self.frozen() != frozen:
            now = time.monotonic()
            if now - started > timeout:
                seen = self._describe_pids()
                if frozen:
                    with contextlib.suppress(CgroupError):
                        self._write_frozen(False)
                raise CgroupError(
                    f"group {self.rel} did not {'freeze' if frozen else 'thaw'} ({seen})"
                )
            if now - asked > ASK_AGAIN:
                self._write_frozen(frozen)
                asked = now
            time.sleep(0.005)

    def _write_frozen(self, frozen: bool) -> None:
        if self.layout.version == 2:
            write(self.dirs["unified"] / "cgroup.freeze", "1" if frozen else "0")
            return
        freezer = self._dir("freezer")
        if freezer is None:
            raise CgroupError("the freezer controller is not mounted")
        write(freezer / "freezer.state", "FROZEN" if frozen else "THAWED")

    def _describe_pids(self) -> str:
        """The group's processes with their scheduler state and wait channel."""
        seen = []
        for pid in self.pids():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                wchan = Path(f"/proc/{pid}/wchan").read_text().strip() or "-"
            except OSError:
                continue
            name, _, rest = stat.partition("(")[2].rpartition(")")
            seen.append(f"{pid} {name} {rest.split()[0]} {wchan}")
        return "; ".join(seen) or "no processes"

    # -- ending ---------------------------------------------------------------------
    def kill_all(self, timeout: float = 10.0) -> None:
        """SIGKILL every process of the group (frozen meanwhile so none can fork), until
        none is left."""
        deadline = time.monotonic() + timeout
        kill_file = self.dirs.get("unified", Path("/")) / "cgroup.kill"
        while pids := self.pids():
            if time.monotonic() > deadline:
                raise CgroupError(f"processes {pids} of group {self.rel} survive SIGKILL")
            if self.layout.version == 2 and kill_file.exists():
                with contextlib.suppress(CgroupError):
                    write(kill_file, "1")
            else:
                with contextlib.suppress(CgroupError):  # the group may vanish under us
                    if self.can_freeze:
                        self._set_frozen(True, 0.5)
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                with contextlib.suppress(CgroupError):
                    if self.can_freeze:
                        self._set_frozen(False, 0.5)
            time.sleep(0.005)

    def oom_kills(self) -> int:
        """How many processes the OOM killer killed in this group."""
        memory = self._dir("memory")
        if memory is None:
            return 0
        name = "memory.events" if self.layout.version == 2 else "memory.oom_control"
        for line in _read(memory / name).splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        if self.layout.version == 1:  # kernels before 4.13 have no oom_kill counter
            return int(_read(memory / "memory.failcnt").strip() or 0)
        return 0

    def remove(self, timeout: float = 5.0) -> None:
        """Remove the group's directories (it must be empty of processes)."""
        deadline = time.monotonic() + timeout
        for d in self.dirs.values():
            while True:
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise CgroupError(f"cannot remove {d}: {exc.strerror}") from None
                    time.sleep(0.01)


def _cpu_list(ids: tuple[int, ...]) -> str:
    return ",".join(str(i) for i in sorted(set(ids)))
