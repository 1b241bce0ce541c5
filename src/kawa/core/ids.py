"""Sortable 64-bit task ids, snowflake-style.

Layout (most significant first): 1 zero bit, 41 bits of milliseconds since
:data:`KAWA_EPOCH_MS`, 10 bits of worker id, 12 bits of sequence. Ids minted later
sort higher, so ordering by id is ordering by submission.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

KAWA_EPOCH_MS = 1704067200000
"""2024-01-01T00:00:00Z in unix milliseconds: time zero of every id."""

TIME_BITS = 41
WORKER_BITS = 10
SEQUENCE_BITS = 12

MAX_WORKER = (1 << WORKER_BITS) - 1
MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1
MAX_TIME_MS = (1 << TIME_BITS) - 1
_TIME_SHIFT = WORKER_BITS + SEQUENCE_BITS


class IdGenerator:
    """Mints strictly increasing ids for one worker, whatever its clock does.

    If the clock stands still or goes backwards, ids keep counting from the last
    millisecond used; when 4096 ids are taken within one millisecond, the next
    millisecond is borrowed. Safe to share between threads.
    """

    def __init__(self, worker: int = 0, clock: Callable[[], float] = time.time) -> None:
        if isinstance(worker, bool) or not 0 <= worker <= MAX_WORKER:
            raise ValueError(f"worker must be an integer in 0..{MAX_WORKER}, got {worker!r}")
        self.worker = worker
        self._clock = clock
        self._last_ms = -1
        self._sequence = MAX_SEQUENCE
        self._lock = threading.Lock()

    def next(self) -> int:
        """A new id, greater than every id this generator returned before."""
        with self._lock:
            now_ms = max(int(self._clock() * 1000) - KAWA_EPOCH_MS, 0)
            if now_ms > self._last_ms:
                self._last_ms, self._sequence = now_ms, 0
            elif self._sequence < MAX_SEQUENCE:
                self._sequence += 1
            else:
                self._last_ms, self._sequence = self._last_ms + 1, 0
            if self._last_ms > MAX_TIME_MS:
                raise OverflowError("the id clock ran past its 41-bit range (year 2093)")
            return (self._last_ms << _TIME_SHIFT) | (self.worker << SEQUENCE_BITS) | self._sequence


def id_time(task_id: int) -> float:
    """Unix time in seconds (millisecond precision) at which ``task_id`` was minted."""
    if not 0 <= task_id < 1 << 63:
        raise ValueError(f"not a 64-bit Kawa id: {task_id}")
    return ((task_id >> _TIME_SHIFT) + KAWA_EPOCH_MS) / 1000


def id_worker(task_id: int) -> int:
    """The worker id encoded in ``task_id``."""
    return (task_id >> SEQUENCE_BITS) & MAX_WORKER
