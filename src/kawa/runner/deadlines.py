"""Task timeouts: one thread and a heap of due times for every task of an executor."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Deadlines:
    """Calls ``fire(task_id)`` when a task's timeout runs out.

    One daemon thread (started on the first ``arm``) sleeps until the earliest due
    time; ``fire`` runs on that thread, one call at a time, so it should be short
    (marking a task and sending it a kill). Arming a task again replaces its deadline;
    a cancelled deadline never fires."""

    def __init__(
        self, fire: Callable[[str], None], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._fire = fire
        self._clock = clock
        self._heap: list[tuple[float, int, str]] = []
        self._live: dict[str, int] = {}
        """Each armed task's live deadline (its sequence number); older heap items are stale."""
        self._seq = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def arm(self, task_id: str, timeout: float | None, elapsed: float = 0.0) -> None:
        """Fire ``task_id`` once ``timeout`` seconds have passed since it started
        (``elapsed`` of them already have); no timeout, no deadline."""
        if not timeout:
            return
        due = self._clock() + max(0.0, timeout - elapsed)
        with self._wake:
            if self._closed:
                return
            seq = next(self._seq)
            self._live[task_id] = seq
            heapq.heappush(self._heap, (due, seq, task_id))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="kawa-deadlines", daemon=True
                )
                self._thread.start()
            self._wake.notify()

    def cancel(self, task_id: str) -> None:
        with self._wake:
            self._live.pop(task_id, None)

    def close(self) -> None:
        """Fire nothing more and let the thread end."""
        with self._wake:
            self._closed = True
            self._live.clear()
            self._wake.notify()

    def pending(self) -> int:
        """How many deadlines are armed and not yet fired or cancelled."""
        with self._wake:
            return len(self._live)

    def _next_due(self) -> str | None:
        """Wait for the earliest live deadline and take it; None once closed."""
        with self._wake:
            while not self._closed:
                heap = self._heap
                while heap and self._live.get(heap[0][2]) != heap[0][1]:
                    heapq.heappop(heap)  # cancelled or replaced
                if not heap:
                    self._wake.wait()
                    continue
                wait = heap[0][0] - self._clock()
                if wait <= 0:
                    _, _, task_id = heapq.heappop(heap)
                    del self._live[task_id]
                    return task_id
                self._wake.wait(wait)
            return None

    def _run(self) -> None:
        while (task_id := self._next_due()) is not None:
            try:
                self._fire(task_id)
            except Exception:
                log.exception("timing out task %s failed", task_id)
