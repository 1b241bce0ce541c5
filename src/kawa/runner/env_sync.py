"""Making a task's environment version available in the runner's Docker.

A version is ready when the journal says its tarball (by digest) was loaded as
``kawa-env/NAME:VERSION`` *and* Docker still has that tag on the same image id. When
it is not, one sync per version runs in its own thread however many tasks ask. It
streams the tarball into ``docker load``: from ``<shared_dir>/kawa-containers/`` when
the file is there, else from the host over HTTP (:mod:`kawa.runner.env_fetch`, which
keeps a partial copy so that a broken transfer resumes). The bytes are hashed on
their way and the last chunk is held back until the digest matches: on a mismatch the
upload is cut off, Docker sees a truncated archive, and nothing is loaded or tagged.
The tasks waiting for a sync see its progress in their status (reported to the host
every half second).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import httpx
import requests.exceptions

from kawa.core.environments import tarball_name
from kawa.digests import Sha256
from kawa.protocol.common import API_PREFIX
from kawa.protocol.environments import SyncProgress
from kawa.protocol.runner_api import EnvironmentRef, RunTask
from kawa.runner.env_fetch import ATTEMPTS, Download, FetchFailed, Retry, Step, Stream, file_stream
from kawa.runner.executor import StartError
from kawa.runner.journal import Journal
from kawa.tls.contexts import PathLike, httpx_verify

log = logging.getLogger(__name__)
SHARED_SUBDIR = "kawa-containers"


class Corrupt(Exception):
    """The tarball's digest is not the one asked for (raised inside the upload)."""


class _Sized:
    """Chunks whose total is known: requests sends them with a Content-Length (a cut-off
    upload then reads as truncated to Docker, and no chunk framing is copied)."""

    def __init__(self, chunks: Iterator[bytes], size: int) -> None:
        self._chunks, self.len = chunks, size

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks


@dataclass
class _Job:
    ref: EnvironmentRef
    future: Future[None] = field(default_factory=Future)
    waiters: set[str] = field(default_factory=set)


class EnvironmentSync:
    def __init__(
        self,
        client: docker.DockerClient,
        journal: Journal,
        host_url: str,
        cluster_secret: str,
        node: str,
        shared_dir: Path | None,
        work_dir: Path,
        ca_file: PathLike | None = None,
    ) -> None:
        self.docker = client
        self.journal = journal
        self.node = node
        self.shared_dir = shared_dir
        self.http = httpx.Client(
            base_url=host_url.rstrip("/") + API_PREFIX + "/runner",
            headers={"Authorization": f"Bearer {cluster_secret}"},
            timeout=httpx.Timeout(60.0, connect=5.0),
            verify=httpx_verify(ca_file),
        )
        self.work_dir = work_dir
        self.backoff = 0.2
        self.progress_every = 0.5
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}

    def close(self) -> None:
        self.http.close()

    def use_host(self, url: str) -> None:
        """Fetch environments from the host at ``url`` from now on (the one leading)."""
        base = httpx.URL(url.rstrip("/") + API_PREFIX + "/runner/")
        if self.http.base_url != base:
            self.http.base_url = base

    # -- asking ---------------------------------------------------------------------
    def ready(self, ref: EnvironmentRef) -> bool:
        loaded = self.journal.loaded_environment(ref.image)
        if loaded is None or loaded[0] != ref.digest:
            return False
        try:
            return bool(self.docker.api.inspect_image(ref.image)["Id"] == loaded[1])
        except docker.errors.ImageNotFound:
            return False

    async def prepare(self, order: RunTask) -> None:
        """Return once the order's environment is loaded; StartError if it cannot be."""
        ref = order.environment
        if ref is None or await asyncio.to_thread(self.ready, ref):
            return
        job = self._join(ref, order.task_id)
        try:
            await asyncio.wrap_future(job.future)
        finally:
            with self._lock:
                job.waiters.discard(order.task_id)

    def _join(self, ref: EnvironmentRef, task_id: str) -> _Job:
        with self._lock:
            job = self._jobs.get(ref.digest)
            if job is None:
                job = self._jobs[ref.digest] = _Job(ref)
                job.future.set_running_or_notify_cancel()  # a waiter's cancel stays its own
                threading.Thread(
                    target=self._run, args=(job,), name=f"env-sync-{ref.name}", daemon=True
                ).start()
            job.waiters.add(task_id)
            return job

    # -- syncing --------------------------------------------------------------------
    def _run(self, job: _Job) -> None:
        ref, failure = job.ref, None
        try:
            if not self.ready(ref):
                self._sync(job)
        except (FetchFailed, Corrupt, StartError) as exc:
            failure = str(exc)
        except Exception as exc:
            log.exception("sync of %s@%s failed", ref.name, ref.version)
            failure = repr(exc)
        self._report(job, None)  # before the waiters go: their status must not keep it
        if failure is None:
            job.future.set_result(None)
        else:
            job.future.set_exception(
                StartError(
                    f"environment {ref.name}@{ref.version} could not be synced to "
                    f"{self.node}: {failure}"
                )
            )
        with self._lock:
            self._jobs.pop(ref.digest, None)

    def _sync(self, job: _Job) -> None:
        ref, started = job.ref, time.monotonic()
        step = self._stepper(job)
        step(0, 1)
        image_id, source = None, "shared"
        shared = self._shared_tarball(ref)
        if shared is not None:
            try:
                image_id = self._load(file_stream(shared, step), ref)
            except Corrupt as exc:
                log.warning("shared tarball %s is corrupt (%s); asking the host", shared, exc)
        if image_id is None:
            image_id, source = self._fetch_and_load(ref, step)
        seconds = time.monotonic() - started
        self.journal.record_load(ref.image, ref.digest, image_id, source, seconds)
        log.info("loaded %s@%s from %s in %.2fs", ref.name, ref.version, source, seconds)

    def _fetch_and_load(self, ref: EnvironmentRef, step: Step) -> tuple[str, str]:
        """Stream the tarball from the host into ``docker load`` (keeping a partial copy
        to resume from); a few attempts. (image id, source)."""
        download = Download(self.http, ref, self.work_dir)
        source = f"http, resumed at {download.resumed_at} bytes" if download.resumed_at else "http"
        problem = ""
        for attempt in range(1, ATTEMPTS + 1):
            if attempt > 1:
                time.sleep(self.backoff * 2 ** (attempt - 2))
            try:
                image_id = self._load(download.open(step), ref)
            except Corrupt as exc:
                download.reset()
                problem = str(exc)
            except Retry as exc:
                problem = str(exc)
            else:
                download.reset()
                return image_id, source
            log.warning("syncing %s@%s, attempt %d: %s", ref.name, ref.version, attempt, problem)
        raise FetchFailed(f"{problem} (tried {ATTEMPTS} times)")

    def _shared_tarball(self, ref: EnvironmentRef) -> Path | None:
        if self.shared_dir is None:
            return None
        path = self.shared_dir / SHARED_SUBDIR / tarball_name(ref.name, ref.version)
        return path if path.is_file() else None

    def _load(self, stream: Stream, ref: EnvironmentRef) -> str:
        """``docker load`` the tarball, verifying its digest on the way; the image id.

        The last chunk is held back until the digest is known: on a mismatch (or when
        the source fails) the upload is cut off, Docker sees a truncated archive and
        loads nothing."""
        hasher = Sha256()

        def body(hashing: ThreadPoolExecutor) -> Iterator[bytes]:
            # hashing runs beside the upload (hashlib lets go of the GIL), in order
            held, pending = b"", None
            for chunk in stream.chunks:
                pending = hashing.submit(hasher.update, chunk)
                if held:
                    yield held
                held = chunk
            if pending is not None:
                pending.result()
            got = hasher.text()
            if got != ref.digest:
                raise Corrupt(f"the tarball's sha256 is {got}, expected {ref.digest}")
            yield held

        try:
            with ThreadPoolExecutor(1, thread_name_prefix="env-hash") as hashing:
                upload = _Sized(body(hashing), stream.size)
                answer = list(self.docker.api.load_image(upload, quiet=True))
            for line in answer:
                if isinstance(line, dict) and (line.get("error") or line.get("errorDetail")):
                    raise StartError(f"docker load failed: {line.get('error') or line}")
        except (Corrupt, Retry, FetchFailed):
            raise
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            if isinstance(exc.__context__, Corrupt | Retry | FetchFailed):
                raise exc.__context__ from None
            raise StartError(f"docker load failed: {exc}") from None
        finally:
            stream.close()
        try:
            return str(self.docker.api.inspect_image(ref.image)["Id"])
        except docker.errors.ImageNotFound:
            raise StartError(f"the tarball did not hold the image {ref.image}") from None

    # -- progress -------------------------------------------------------------------
    def _stepper(self, job: _Job) -> Step:
        last = [0.0]

        def step(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] < self.progress_every:
                return
            last[0] = now
            ref = job.ref
            share = f"{min(done / total, 1.0):.0%}" if total else "0%"
            self._report(job, f"syncing environment {ref.name}@{ref.version}, {share}")

        return step

    def _report(self, job: _Job, text: str | None) -> None:
        with self._lock:
            tasks = sorted(job.waiters)
        if not tasks:
            return
        report = SyncProgress(node=self.node, tasks=tasks, text=text)
        try:
            self.http.post("/environments/progress", json=report.model_dump(), timeout=5.0)
        except httpx.HTTPError as exc:
            log.debug("sync progress not delivered: %s", exc)
