"""Listing answers kept while the tables they are read from are unchanged.

Each answer is stored with the write versions of its tables, noted before it was read
(:mod:`kawa.store.write_versions`): while those versions hold, the stored bytes are
what reading again would give, so they are answered as they are. Writes of only the
*quiet* columns of a table (a node's heartbeat and usage) are tolerated for
``quiet_for`` seconds. Writes this process cannot see (other hosts on a shared
database, a hand edit) are bounded by ``max_age``: an answer older than that is read
again.

Callers asking for the same answer at once wait for one reading of it."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from kawa.store.write_versions import WriteVersions, write_versions

MAX_AGE = 1.0
"""Seconds an answer read from the database is kept at most: what this process did not
write (another host sharing the database, a hand edit) shows within this time."""


@dataclass(frozen=True)
class _Kept:
    versions: tuple[int, ...]
    quiet: tuple[int, ...]
    made: float
    body: bytes


class AnswerCache:
    """Up to ``size`` answers, each under its key, most recently used kept longest."""

    def __init__(
        self,
        versions: WriteVersions,
        tables: tuple[str, ...],
        *,
        quiet_for: float = 0.0,
        max_age: float | None = None,
        size: int = 64,
    ) -> None:
        self.versions = versions
        self.tables = tables
        self.quiet_tables = tuple(versions.quiet_name(t) for t in tables if t in versions.quiet)
        self.quiet_for = quiet_for
        self.max_age = max_age
        self.size = size
        self._kept: OrderedDict[Hashable, _Kept] = OrderedDict()
        self._lock = threading.Lock()
        self._reading: dict[Hashable, threading.Lock] = {}

    @classmethod
    def of_database(
        cls, sessions: sessionmaker[Session], tables: tuple[str, ...], quiet_for: float = 0.0
    ) -> AnswerCache:
        """A cache of answers read from ``tables`` through ``sessions``, each kept at
        most :data:`MAX_AGE` seconds."""
        return cls(write_versions(sessions), tables, quiet_for=quiet_for, max_age=MAX_AGE)

    def known(self, key: Hashable) -> bytes | None:
        """The kept answer for ``key`` while still current, else None (reads nothing)."""
        kept = self._kept.get(key)
        if kept is None or not self._current(kept):
            return None
        return kept.body

    def answer(self, key: Hashable, read: Callable[[], bytes]) -> bytes:
        """The current answer for ``key``: kept, or ``read()`` (one caller at a time per
        key; the others wait for its answer). Blocks: call it off the event loop."""
        body = self.known(key)
        if body is not None:
            return body
        with self._lock:
            gate = self._reading.setdefault(key, threading.Lock())
        with gate:
            body = self.known(key)
            if body is not None:
                return body
            versions = self.versions.of(*self.tables)
            quiet = self.versions.of(*self.quiet_tables)
            made = time.monotonic()
            body = read()
            with self._lock:
                self._kept[key] = _Kept(versions, quiet, made, body)
                self._kept.move_to_end(key)
                while len(self._kept) > self.size:
                    self._kept.popitem(last=False)
                self._reading.pop(key, None)
            return body

    def _current(self, kept: _Kept) -> bool:
        if kept.versions != self.versions.of(*self.tables):
            return False
        age = time.monotonic() - kept.made
        if self.max_age is not None and age > self.max_age:
            return False
        return kept.quiet == self.versions.of(*self.quiet_tables) or age <= self.quiet_for
