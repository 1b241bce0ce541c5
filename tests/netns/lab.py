"""A lab of "machines" made of network namespaces, for tests across real addresses.

Each machine is a network namespace with one veth (``eth0``) whose other end sits on a
bridge that lives in a namespace of its own. Addresses are in 10.213.0.0/24 and exist
only inside these namespaces: the machine's own interfaces and routes are never touched.
The bridge namespace holds 10.213.0.1 as every machine's default gateway, so a route
lookup finds a source address; it forwards nothing (IP forwarding is off there).

Processes run in a machine with ``ip netns exec``. The test process reaches a machine's
network from a thread that entered that namespace (``setns`` changes only the calling
thread), so the Python client talks to the host at its 10.213 address.

One Docker daemon serves every machine: runners reach it through its unix socket,
which works across network namespaces; containers carry the node's name in their labels.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
SUBNET = "10.213.0"
BRIDGE_ADDRESS = f"{SUBNET}.1"
COMMAND_TIMEOUT = 30.0
_CLONE_NEWNET = 0x40000000


def lab_problem() -> str | None:
    """None when this process can build a lab (root, iproute2), else why not."""
    if os.geteuid() != 0:
        return "network namespace tests need root"
    if shutil.which("ip") is None:
        return "network namespace tests need iproute2 (`ip`)"
    return None


def _ip(*args: str) -> None:
    done = subprocess.run(
        ["ip", *args], capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")


@dataclass
class Machine:
    short: str
    ns: str
    address: str
    veth: str
    """The veth end on the bridge (in the bridge's namespace)."""


@dataclass
class Lab:
    tag: str
    machines: dict[str, Machine] = field(default_factory=dict)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _made: list[str] = field(default_factory=list)

    @property
    def bridge_ns(self) -> str:
        return f"kawa-{self.tag}-br"

    def start(self) -> None:
        _ip("netns", "add", self.bridge_ns)
        self._made.append(self.bridge_ns)
        _ip("-n", self.bridge_ns, "link", "set", "lo", "up")
        _ip("-n", self.bridge_ns, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.bridge_ns, "addr", "add", f"{BRIDGE_ADDRESS}/24", "dev", "br0")
        _ip("-n", self.bridge_ns, "link", "set", "br0", "up")

    def add(self, short: str, host_octet: int) -> Machine:
        """A machine ``short`` at 10.213.0.``host_octet``, linked to the bridge."""
        ns, veth = f"kawa-{self.tag}-{short}", f"v-{short}"[:15]
        _ip("netns", "add", ns)
        self._made.append(ns)
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", self.bridge_ns, "link", "add", veth, "type", "veth", "peer", "name", "eth0",
            "netns", ns)  # fmt: skip
        _ip("-n", self.bridge_ns, "link", "set", veth, "master", "br0", "up")
        address = f"{SUBNET}.{host_octet}"
        _ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", ns, "route", "add", "default", "via", BRIDGE_ADDRESS)
        machine = Machine(short, ns, address, veth)
        self.machines[short] = machine
        return machine

    def link(self, short: str, up: bool) -> None:
        """Plug (``up``) or unplug machine ``short``'s cable at the bridge."""
        veth = self.machines[short].veth
        _ip("-n", self.bridge_ns, "link", "set", veth, "up" if up else "down")

    # -- processes ----------------------------------------------------------------------
    def spawn(
        self, short: str, argv: list[str], env: dict[str, str], log: Path
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` in machine ``short`` (output to ``log``); stopped by :meth:`close`."""
        with log.open("ab") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.machines[short].ns, *argv],
                env=env,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def run(
        self,
        short: str,
        argv: list[str],
        env: dict[str, str],
        timeout: float = 120,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.machines[short].ns, *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            check=False,
        )

    def call(self, short: str, fn: Callable[[], T]) -> T:
        """``fn()`` run in a thread inside machine ``short``'s network namespace."""
        result: dict[str, Any] = {}

        def inside() -> None:
            try:
                fd = os.open(f"/run/netns/{self.machines[short].ns}", os.O_RDONLY)
                try:
                    if ctypes.CDLL(None, use_errno=True).setns(fd, _CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), "setns failed")
                finally:
                    os.close(fd)
                result["value"] = fn()
            except BaseException as exc:  # handed to the caller
                result["error"] = exc

        thread = threading.Thread(target=inside, name=f"in-{short}", daemon=True)
        thread.start()
        thread.join()
        if "error" in result:
            raise result["error"]
        return result["value"]  # type: ignore[no-any-return]

    @staticmethod
    def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, grace: float = 15) -> None:
        """Signal ``proc``'s process group, then kill it after ``grace`` seconds."""
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(grace)

    def close(self) -> None:
        for proc in reversed(self.procs):
            with contextlib.suppress(Exception):
                self.stop(proc)
        for ns in reversed(self._made):
            with contextlib.suppress(Exception):
                _ip("netns", "del", ns)
        self._made.clear()
