"""Listing answers kept while the tables they are read from are unchanged.

Each answer is stored with the write versions of its tables, noted before it was read
(:mod:`kawa.store.write_versions`): while those versions hold, the stored bytes are
what reading again would give, so they are answered as they are. Writes of only the
*quiet* columns of a table (a node's heartbeat and usage) are tolerated for
``quiet_for`` seconds. Writes this process cannot see (other hosts on a shared
database, a hand edit) are bounded by ``max_age``: an answer older than that is read
again.

A write of the tables makes the next caller read (and callers asking for the same
answer at once wait for that one reading). An answer that is only too old — past
``max_age``, or past ``quiet_for`` after quiet writes — is still answered while a
worker thread reads it again, so no caller waits for a refresh: such an answer lags by
at most its limit plus one reading."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from kawa.store.write_versions import WriteVersions, write_versions

V = TypeVar("V")

MAX_AGE = 1.0
"""Seconds an answer read from the database is kept at most: what this process did not
write (another host sharing the database, a hand edit) shows within this time."""


@dataclass(frozen=True)
class _Kept(Generic[V]):
    versions: tuple[int, ...]
    quiet: tuple[int, ...]
    made: float
    body: V
    read: Callable[[], V]


class AnswerCache(Generic[V]):
    """Up to ``size`` answers (whatever ``read`` makes: bytes, an encoded answer), each
    under its key, most recently used kept longest."""

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
        self._kept: OrderedDict[Hashable, _Kept[V]] = OrderedDict()
        self._lock = threading.Lock()
        self._reading: dict[Hashable, threading.Lock] = {}
        self._refreshing: set[Hashable] = set()

    @classmethod
    def of_database(
        cls, sessions: sessionmaker[Session], tables: tuple[str, ...], quiet_for: float = 0.0
    ) -> AnswerCache[V]:
        """A cache of answers read from ``tables`` through ``sessions``, each kept at
        most :data:`MAX_AGE` seconds."""
        return cls(write_versions(sessions), tables, quiet_for=quiet_for, max_age=MAX_AGE)

    def known(self, key: Hashable) -> V | None:
        """The kept answer for ``key`` unless its tables were written since, else None.
        An answer only too old is returned and read again in a worker thread."""
        kept = self._kept.get(key)
        if kept is None or kept.versions != self.versions.of(*self.tables):
            return None
        if not self._fresh(kept):
            self._refresh(key, kept.read)
        return kept.body

    def answer(self, key: Hashable, read: Callable[[], V]) -> V:
        """The current answer for ``key``: kept, or ``read()`` (one caller at a time per
        key; the others wait for its answer). Blocks: call it off the event loop."""
        body = self.known(key)
        if body is not None:
            return body
        return self._read(key, read, only_if_stale=True)

    def _read(self, key: Hashable, read: Callable[[], V], only_if_stale: bool) -> V:
        with self._lock:
            gate = self._reading.setdefault(key, threading.Lock())
        with gate:
            kept = self._kept.get(key)
            if (
                only_if_stale
                and kept is not None
                and kept.versions == self.versions.of(*self.tables)
            ):
                return kept.body  # read by the caller this one waited for
            versions = self.versions.of(*self.tables)
            quiet = self.versions.of(*self.quiet_tables)
            made = time.monotonic()
            body = read()
            with self._lock:
                self._kept[key] = _Kept(versions, quiet, made, body, read)
                self._kept.move_to_end(key)
                while len(self._kept) > self.size:
                    self._kept.popitem(last=False)
                self._reading.pop(key, None)
            return body

    def _refresh(self, key: Hashable, read: Callable[[], V]) -> None:
        """Read ``key`` again in a thread of its own, unless that is under way."""
        with self._lock:
            if key in self._refreshing:
                return
            self._refreshing.add(key)

        def run() -> None:
            try:
                self._read(key, read, only_if_stale=False)
            except Exception:  # the next caller reads it (and sees the error) itself
                with self._lock:
                    self._kept.pop(key, None)
            finally:
                with self._lock:
                    self._refreshing.discard(key)

        threading.Thread(target=run, name="kawa-answer-refresh", daemon=True).start()

    def _fresh(self, kept: _Kept[V]) -> bool:
        age = time.monotonic() - kept.made
        if self.max_age is not None and age > self.max_age:
            return False
        return kept.quiet == self.versions.of(*self.quiet_tables) or age <= self.quiet_for
