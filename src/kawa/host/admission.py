"""A bound on work in flight: beyond it a call is answered 429 with ``Retry-After``
at once, instead of waiting without end or failing later."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from kawa.host.errors import TooBusy


class InFlightLimit:
    """At most ``limit`` holders at once; another is refused with :class:`TooBusy`."""

    def __init__(self, what: str, limit: int, retry_after: float = 1.0) -> None:
        if limit < 1:
            raise ValueError("the in-flight limit must be at least 1")
        self.what = what
        self.limit = limit
        self.retry_after = retry_after
        self._lock = threading.Lock()
        self.in_flight = 0

    @contextmanager
    def admit(self) -> Iterator[None]:
        with self._lock:
            if self.in_flight >= self.limit:
                raise TooBusy(
                    f"the host is handling {self.limit} {self.what} already: retry in "
                    f"{self.retry_after:g}s",
                    math.ceil(self.retry_after),
                )
            self.in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1
