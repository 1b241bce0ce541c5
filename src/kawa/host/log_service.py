"""Task logs: from the shared directory when host and runner share one, else streamed
from the task's runner."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from pathlib import Path

from kawa.core.task_states import WAIT_DONE_STATES, TaskState
from kawa.host.errors import BadRequest, Conflict, NotFound
from kawa.host.events import Subscription
from kawa.host.ledger import Ledger
from kawa.host.runner_link import RunnerLink, RunnerRejected, RunnerUnreachable
from kawa.store.models import Node, Task

STREAMS = {"stdout": "out", "stderr": "err"}
LOG_SUBDIR = "kawa-logs"


def log_file(root: Path, task_id: str, stream: str) -> Path:
    return root / LOG_SUBDIR / f"{task_id}.{STREAMS[stream]}"


def check_stream(stream: str) -> None:
    """BadRequest unless ``stream`` names one of a task's two logs."""
    if stream not in STREAMS:
        raise BadRequest(f"unknown stream {stream!r}: use stdout or stderr")


class LogService:
    def __init__(self, ledger: Ledger, link: RunnerLink, shared_dir: Path | None) -> None:
        self.ledger = ledger
        self.link = link
        self.shared_dir = shared_dir

    def _locate(self, ref: str) -> tuple[str, str, str | None]:
        with self.ledger.sessions() as s:
            task = self.ledger.find(s, ref)
            node = s.get(Node, task.node) if task.node else None
            return str(task.id), task.state, node.url if node else None

    def _done(self, task_id: str) -> bool:
        with self.ledger.sessions() as s:
            task = s.get(Task, int(task_id))
            return task is None or TaskState(task.state) in WAIT_DONE_STATES

    async def stream(
        self, ref: str, stream: str, follow: bool, offset: int = 0
    ) -> AsyncGenerator[bytes, None]:
        """The stream's bytes from ``offset`` on; with ``follow``, until the task ends."""
        check_stream(stream)
        task_id, state, url = self._locate(ref)
        return self.read(task_id, state, url, stream, follow, offset)

    def read(
        self, task_id: str, state: str, url: str | None, stream: str, follow: bool, offset: int
    ) -> AsyncGenerator[bytes, None]:
        """:meth:`stream` of a task already found (its id, its state and its node's URL, None
        when it has no node) and a checked ``stream``. Conflict while the task is pending,
        NotFound when it never ran."""
        if self.shared_dir and log_file(self.shared_dir, task_id, stream).exists():
            path = log_file(self.shared_dir, task_id, stream)
            return self._tail(path, task_id, follow, offset)
        if url is None:
            if state == TaskState.PENDING.value:
                raise Conflict(f"task {task_id} is pending: no output yet")
            raise NotFound(f"task {task_id} has no logs (it never ran on a node)")
        return self._proxy(url, task_id, stream, follow, offset)

    async def _proxy(
        self, url: str, task_id: str, stream: str, follow: bool, offset: int
    ) -> AsyncGenerator[bytes, None]:
        try:
            async with self.link.logs(url, task_id, stream, follow, offset) as response:
                async for chunk in response.aiter_raw():
                    yield chunk
        except RunnerUnreachable:
            yield b"[kawa] the task's runner is unreachable; logs unavailable\n"
        except RunnerRejected as exc:
            yield f"[kawa] {exc.detail}\n".encode()

    async def _tail(
        self, path: Path, task_id: str, follow: bool, offset: int
    ) -> AsyncGenerator[bytes, None]:
        with self.ledger.bus.subscribe() as changes, path.open("rb") as f:
            f.seek(offset)
            while True:
                chunk = f.read(65536)
                if chunk:
                    yield chunk
                    continue
                if not follow or self._done(task_id):
                    rest = f.read()
                    if rest:
                        yield rest
                    return
                await _until_change(changes, task_id, 0.2)


async def _until_change(changes: Subscription, task_id: str, seconds: float) -> None:
    """Return when an event about the task arrives (or any, once the subscription was cut
    off as a slow one), or after ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            event = await asyncio.wait_for(changes.queue.get(), left)
        except TimeoutError:
            return
        if event is None or (event.task is not None and event.task.id == task_id):
            return
