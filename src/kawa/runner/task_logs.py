"""Reading a task's log file from an offset, optionally following it until the task ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

CHUNK = 65536


async def read_log(
    path: Path,
    offset: int,
    follow: bool,
    ended: Callable[[], bool],
    pause: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> AsyncIterator[bytes]:
    """The bytes of ``path`` from ``offset``; with ``follow``, new bytes as they are
    written until ``ended()`` (then the rest). Waits for the file while the task lives.
    Between looks it awaits ``pause(seconds)``, which may return early when a task ends."""
    while not path.exists():
        if ended():
            return
        await asyncio.sleep(0.05)
    with path.open("rb") as f:
        f.seek(max(0, offset))
        while True:
            chunk = f.read(CHUNK)
            if chunk:
                yield chunk
            elif not follow or ended():
                rest = f.read()
                if rest:
                    yield rest
                return
            else:
                await pause(0.1)
