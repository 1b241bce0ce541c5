"""Before a runner is registered, the host checks it can reach it back.

A runner that advertises an address the host cannot reach would register, heartbeat and
look healthy while every order to it fails. The host asks the runner's ``/health`` at the
advertised URL (a short timeout; a refused connection is retried briefly, as the runner
may register a moment before its server listens) and refuses the registration with the
address and port it tried.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import httpx

from kawa.host.errors import BadRequest

PROBE_TIMEOUT = 3.0
"""Seconds the whole check may take."""


def _where(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"address {parts.hostname} port {port} ({url})"


async def check_reachable(http: httpx.AsyncClient, name: str, url: str) -> None:
    """Return when a runner called ``name`` answers at ``url``; BadRequest saying what
    was tried otherwise."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PROBE_TIMEOUT
    hint = (
        "check that the runner listens there and no firewall is in the way, or set the "
        "address the host can reach with `kawa join --advertise URL` ([runner] advertise_url)"
    )
    while True:
        left = deadline - loop.time()
        try:
            response = await http.get(url.rstrip("/") + "/health", timeout=max(0.1, left))
            break
        except httpx.ConnectError as exc:
            if loop.time() + 0.1 < deadline and "refused" in str(exc).lower():
                await asyncio.sleep(0.1)
                continue
            problem = str(exc) or type(exc).__name__
        except httpx.TimeoutException:
            problem = f"no answer within {PROBE_TIMEOUT:g}s"
        except httpx.HTTPError as exc:
            problem = str(exc) or type(exc).__name__
        raise BadRequest(f"the host cannot reach runner {name} at {_where(url)}: {problem}; {hint}")
    if response.status_code == 401:
        raise BadRequest(
            f"something at {_where(url)} refuses this cluster's secret: another cluster's "
            f"runner may answer there, not {name}; set this runner's own with --advertise"
        )
    if response.status_code == 200:
        try:
            answered = response.json().get("name")
        except (ValueError, AttributeError):
            answered = None
        if isinstance(answered, str) and answered != name:
            raise BadRequest(
                f"runner {answered!r}, not {name!r}, answers at {_where(url)}: two runners "
                "advertise the same address; set each one's own with --advertise"
            )
