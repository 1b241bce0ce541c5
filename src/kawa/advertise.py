"""The address a runner tells the host to reach it at, found without sending traffic.

Connecting a UDP socket sends nothing: the kernel only picks the route, and with it the
local address its packets would leave from. That address, on the route to the host, is
the one the host can most likely reach the runner back at.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

_WILDCARDS = ("", "0.0.0.0", "::", "[::]")
_NO_ROUTE_PROBE = "192.0.2.1"
"""A documentation-only address (TEST-NET-1): used to ask for the default route's
source address; nothing is ever sent to it."""


def local_address_towards(host: str, port: int = 9) -> str | None:
    """This machine's source address on its route to ``host`` (a name or an address),
    or None when there is no route or the name does not resolve."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError):
        return None
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as s:
            try:
                s.connect(address)
            except OSError:
                continue
            return str(s.getsockname()[0])
    return None


def primary_address() -> str:
    """The source address of this machine's default route (its hostname without one)."""
    return local_address_towards(_NO_ROUTE_PROBE) or socket.gethostname()


def url_host(address: str) -> str:
    """``address`` as it goes in a URL (IPv6 in brackets)."""
    return f"[{address}]" if ":" in address and not address.startswith("[") else address


def advertise_url(host_url: str, port: int, tls: bool, bind: str = "0.0.0.0") -> str:
    """The runner's URL as the host should see it: its bind address when it listens on
    one address only, else its address on the route to ``host_url``'s host."""
    scheme = "https" if tls else "http"
    if bind not in _WILDCARDS:
        return f"{scheme}://{url_host(bind)}:{port}"
    try:
        target = urlsplit(host_url).hostname
    except ValueError:
        target = None
    found = local_address_towards(target) if target else None
    return f"{scheme}://{url_host(found or socket.gethostname())}:{port}"
