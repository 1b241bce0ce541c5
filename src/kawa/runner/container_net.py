"""Reaching a container's ports from a runner that lives in another network namespace.

On a node the runner shares Docker's network namespace and reaches a container at its
bridge address (or 127.0.0.1 on the host network). A runner started in a network
namespace of its own (a test "machine", a runner in a container) has no route to
Docker's bridge: there it makes the socket inside the container's own network
namespace (``setns``, which needs root), where the same address is local. The socket
keeps that namespace for its life; the connection is then made as usual.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import socket
import threading
from typing import Any

_CLONE_NEWNET = 0x40000000


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


def _local(address: str) -> bool:
    """Whether ``address`` is one of this network namespace's own addresses."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.bind((address, 0))
        except OSError:
            return False
    return True


def _same_netns(pid: int) -> bool:
    try:
        theirs = os.stat(f"/proc/{pid}/ns/net").st_ino
        return theirs == os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return True  # cannot tell (not root): connect from here, as always


def netns_to_enter(inspected: dict[str, Any]) -> int | None:
    """The container's pid when this runner must enter the container's network namespace
    to reach it, else None: a bridged container is reached directly when its network's
    gateway is an address of the runner's own namespace (the runner shares Docker's); a
    host-network one when it shares the runner's namespace."""
    pid = (inspected.get("State") or {}).get("Pid")
    if not isinstance(pid, int) or pid <= 0 or os.geteuid() != 0:
        return None
    if (inspected.get("HostConfig") or {}).get("NetworkMode") == "host":
        return None if _same_netns(pid) else pid
    settings = inspected.get("NetworkSettings") or {}
    networks = (settings.get("Networks") or {}).values()
    gateway = settings.get("Gateway") or next(
        (n["Gateway"] for n in networks if n.get("Gateway")), None
    )
    if not gateway or _local(gateway):
        return None
    return pid


def socket_in_netns(pid: int, family: int) -> socket.socket:
    """A non-blocking TCP socket made in the network namespace of process ``pid`` (in a
    thread of its own: ``setns`` changes only the calling thread, which then returns)."""
    made: dict[str, Any] = {}

    def make() -> None:
        try:
            target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
            try:
                _setns(target)
            finally:
                os.close(target)
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            made["sock"] = sock
        except BaseException as exc:  # handed to the caller
            made["error"] = exc

    thread = threading.Thread(target=make, name="kawa-netns", daemon=True)
    thread.start()
    thread.join()
    if "error" in made:
        raise made["error"]
    return made["sock"]  # type: ignore[no-any-return]


async def container_socket(client: Any, container: str, host: str) -> socket.socket | None:
    """A socket to reach ``host`` (the container's address) made inside ``container``'s
    network namespace when this runner cannot reach it from its own (see
    :func:`netns_to_enter`); None otherwise (the caller connects from here)."""
    inspected = await asyncio.to_thread(client.api.inspect_container, container)
    pid = netns_to_enter(inspected)
    if pid is None:
        return None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return await asyncio.to_thread(socket_in_netns, pid, family)
