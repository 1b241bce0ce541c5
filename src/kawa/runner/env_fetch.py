"""Where an environment's tarball bytes come from: a file (the shared directory), or
the host over HTTP, resumable.

A :class:`Download` streams the tarball while appending it to
``<work_dir>/NAME-VERSION-<digest>.tar.partial``: an attempt that breaks leaves the
bytes it got, and the next attempt (or the next sync, after a restart) sends those from
the file and asks the host only for the rest (``Range: bytes=N-``). The bytes are
checked against the digest by whoever consumes them (:mod:`kawa.runner.env_sync`), which
calls :meth:`Download.reset` when they do not match.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from kawa.digests import CHUNK, read_chunks
from kawa.protocol.environments import DIGEST_HEADER
from kawa.protocol.runner_api import EnvironmentRef

log = logging.getLogger(__name__)
ATTEMPTS = 3
Step = Callable[[int, int], None]
"""``(bytes done, bytes in all)`` as the bytes go."""


class FetchFailed(Exception):
    """The tarball cannot be had; another attempt would not help."""


class Retry(Exception):
    """This attempt failed in a way another attempt may not."""


class Stream:
    """A tarball's bytes, with their number known before the first one is read (so that
    Docker gets a ``Content-Length`` rather than a chunked upload)."""

    def __init__(
        self, size: int, chunks: Generator[bytes], close: Callable[[], None] = lambda: None
    ) -> None:
        self.size, self.chunks, self._close = size, chunks, close

    def close(self) -> None:
        """Stop reading: the file and the partial copy are closed, the answer too."""
        self.chunks.close()
        self._close()


def file_stream(path: Path, step: Step) -> Stream:
    size = path.stat().st_size

    def chunks() -> Generator[bytes]:
        done = 0
        for chunk in read_chunks(path):
            done += len(chunk)
            yield chunk
            step(done, size)

    return Stream(size, chunks())


class Download:
    def __init__(self, http: httpx.Client, ref: EnvironmentRef, work_dir: Path) -> None:
        self.http = http
        self.ref = ref
        work_dir.mkdir(parents=True, exist_ok=True)
        digest = ref.digest.removeprefix("sha256:")[:12]
        self.partial = work_dir / f"{ref.name}-{ref.version}-{digest}.tar.partial"
        self.resumed_at = self._size()
        """Bytes an earlier, broken transfer had brought (0: a fresh download)."""

    def _size(self) -> int:
        return self.partial.stat().st_size if self.partial.exists() else 0

    def reset(self) -> None:
        """Forget what was downloaded (it did not match, or it has been loaded)."""
        self.partial.unlink(missing_ok=True)

    def open(self, step: Step) -> Stream:
        """The whole tarball: what the partial file holds, then the rest from the host.

        Raises :class:`Retry` (transfer broke, host busy) or :class:`FetchFailed`, here
        or while the bytes are read."""
        have = self._size()
        url = f"/environments/{self.ref.name}/{self.ref.version}"
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            r = self.http.send(self.http.build_request("GET", url, headers=headers), stream=True)
        except httpx.HTTPError as exc:
            raise Retry(f"the host could not be reached: {exc!r}") from None
        try:
            total = self._check(r, have)
            if r.status_code == 200 and have:  # the host sent it all: start over
                self.reset()
                raise Retry("the host ignored the range asked for")
        except BaseException:
            r.close()
            raise
        return Stream(total, self._chunks(r, have, total, step), r.close)

    def _chunks(self, r: httpx.Response, have: int, total: int, step: Step) -> Generator[bytes]:
        done = 0
        try:
            if have:
                for chunk in read_chunks(self.partial):
                    done += len(chunk)
                    yield chunk
                    step(done, total)
            # the copy kept for resuming is written beside the stream, in order; if a
            # write fails the file stops there (a correct prefix) and the stream goes on
            with self.partial.open("ab") as out, ThreadPoolExecutor(1, "env-partial") as writer:
                failed: list[OSError] = []

                def keep(chunk: bytes) -> None:
                    if not failed:
                        try:
                            out.write(chunk)
                        except OSError as exc:
                            failed.append(exc)
                            log.warning("cannot keep a partial copy of %s: %s", self.ref.name, exc)

                for chunk in r.iter_bytes(CHUNK):
                    writer.submit(keep, chunk)
                    done += len(chunk)
                    yield chunk
                    step(done, total)
        except httpx.HTTPError as exc:
            raise Retry(f"the transfer broke at {self._size()} bytes: {exc!r}") from None
        finally:
            r.close()
        if done < total:
            raise Retry(f"the transfer ended at {done} of {total} bytes")

    def _check(self, r: httpx.Response, have: int) -> int:
        """The tarball's whole size, from a usable answer; else raise."""
        ref = self.ref
        if r.status_code == 404:
            raise FetchFailed(f"the host has no tarball for {ref.name}@{ref.version}")
        if r.status_code == 416:  # the partial file is longer than the tarball
            self.reset()
            raise Retry("a stale partial download was discarded")
        if r.status_code >= 400:
            r.read()
            raise Retry(f"the host answered HTTP {r.status_code}: {r.text[:200]}")
        if r.headers.get(DIGEST_HEADER, ref.digest) != ref.digest:
            raise FetchFailed(
                f"the host's tarball of {ref.name}@{ref.version} has digest "
                f"{r.headers[DIGEST_HEADER]}, the task asks for {ref.digest}"
            )
        if r.status_code == 206:
            return int(r.headers["content-range"].rsplit("/", 1)[1])
        return int(r.headers.get("content-length", 0))
