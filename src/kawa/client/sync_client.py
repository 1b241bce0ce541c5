"""The synchronous client: used by the CLI and the tests."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Generator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus
from websockets.sync.client import connect

from kawa.client import calls, retries
from kawa.client import environments as envs
from kawa.client.errors import KawaError, raise_for, refused, unreachable
from kawa.client.host_urls import NOT_SENT, HostUrls, may_resend
from kawa.protocol.audit import AuditEntryView
from kawa.protocol.common import API_PREFIX
from kawa.protocol.environments import EnvironmentVersionView, Progress, WorkspaceView
from kawa.protocol.events import Event
from kawa.protocol.history import HistoryWindow, NodeHistory
from kawa.protocol.join import (
    JoinAccepted,
    JoinRequest,
    JoinTokenCreate,
    JoinTokenCreated,
    JoinTokenView,
)
from kawa.protocol.meta import HostInfo, SshKeyPair, WhoAmI
from kawa.protocol.nodes import NodeHealth, NodeView
from kawa.protocol.task_queries import DryRunResponse, TaskCounts
from kawa.protocol.tasks import SubmitResponse, TaskAction, TaskSpec, TaskView
from kawa.tls.contexts import PathLike, httpx_verify, websocket_ssl

T = TypeVar("T")


class KawaClient:
    """The host API at ``url`` with ``token``; an https host is verified with the CA
    certificates in ``ca_file`` (default: the system's)."""

    def __init__(
        self, url: str, token: str, timeout: float = 30.0, ca_file: PathLike | None = None
    ) -> None:
        self.urls = HostUrls(url)
        self.url = self.urls.current
        """The host in use: the first of the comma-separated ``url`` that answers."""
        self.token = token
        self.ca_file = ca_file
        try:
            self._http = httpx.Client(
                base_url=self.url + API_PREFIX,
                timeout=timeout,
                headers={"Authorization": f"Bearer {token}"} if token else {},
                verify=httpx_verify(ca_file),
            )
        except httpx.InvalidURL as exc:
            raise KawaError(f"bad host URL {url!r}: {exc}") from None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> KawaClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _do(self, call: calls.Call[T]) -> T:
        """Send ``call`` (:meth:`_send`); one the host refuses as too busy (429) is sent
        again after the ``Retry-After`` it asks, a bounded number of times
        (:mod:`kawa.client.retries`)."""
        attempt = 0
        while True:
            response = self._send(call)
            wait = retries.retry_delay(
                response.status_code, response.headers.get("retry-after"), attempt, random.random()
            )
            if wait is None:
                return calls.decode(call, response)
            time.sleep(wait)
            attempt += 1

    def _send(self, call: calls.Call[T]) -> httpx.Response:
        """``call``'s answer from the host in use; when it cannot be connected to (the
        request was not sent), or a request that changes nothing fails, from the next
        of the listed hosts."""
        failure: Exception | None = None
        for url in self.urls.attempts():
            self._use(url)
            try:
                response = self._http.request(
                    call.method, call.path, json=call.json, params=call.params
                )
            except httpx.HTTPError as exc:
                if not may_resend(call.method, exc):
                    raise unreachable(self.url, exc) from None
                failure = exc
                continue
            self.urls.answered(url)
            return response
        assert failure is not None
        raise unreachable(", ".join(self.urls.all), failure)

    def _use(self, url: str) -> None:
        if url != self.url:
            self.url = url
            self._http.base_url = httpx.URL(url + API_PREFIX)

    def _failed_over(self) -> bool:
        """After the host in use stopped answering: whether another of the listed hosts
        answers now (it is then the one in use)."""
        if len(self.urls) < 2:
            return False
        before = self.url
        try:
            self.health()
        except KawaError:
            return False
        return self.url != before

    # -- API ------------------------------------------------------------------------
    def audit(
        self, user: str | None = None, since: datetime | None = None, limit: int = 100
    ) -> list[AuditEntryView]:
        """The audit trail, newest first (admin only)."""
        return self._do(calls.audit(user, since, limit))

    def health(self) -> dict[str, Any]:
        return self._do(calls.health())

    def submit(self, spec: TaskSpec) -> SubmitResponse:
        return self._do(calls.submit(spec))

    def dry_run(self, spec: TaskSpec) -> DryRunResponse:
        """What submitting ``spec`` now would do, task by task; nothing is stored."""
        return self._do(calls.dry_run(spec))

    def task_counts(self) -> TaskCounts:
        """How many tasks the caller may see, by state."""
        return self._do(calls.task_counts())

    def whoami(self) -> WhoAmI:
        return self._do(calls.whoami())

    def info(self) -> HostInfo:
        """Version, cluster id, the API's URL and the SSH gateway's address."""
        return self._do(calls.info())

    def new_ssh_key(self) -> SshKeyPair:
        """A new Ed25519 key pair made by the host, which keeps no copy (shown once)."""
        return self._do(calls.new_ssh_key())

    def task(self, ref: str) -> TaskView:
        return self._do(calls.get_task(ref))

    def tasks(
        self,
        states: list[str] | None = None,
        node: str | None = None,
        batch: str | None = None,
        kind: str | None = None,
        limit: int = 200,
        owner: str | None = None,
        q: str | None = None,
        before: str | None = None,
    ) -> list[TaskView]:
        """Tasks, newest first; ``before`` (a task id) pages to older ones."""
        return self._do(calls.list_tasks(states, node, batch, kind, limit, owner, q, before))

    def act(self, ref: str, action: TaskAction) -> TaskView:
        return self._do(calls.act(ref, action))

    def retry(self, ref: str) -> SubmitResponse:
        """Submit the task's spec again as a new task."""
        return self._do(calls.retry(ref))

    def remove_vps(self, ref: str, force: bool = False) -> TaskView:
        """Remove a VPS's container and snapshots (``force``: stop a running one first)."""
        return self._do(calls.remove_vps(ref, force))

    def nodes(self) -> list[NodeView]:
        return self._do(calls.list_nodes())

    def node(self, name: str) -> NodeView:
        return self._do(calls.get_node(name))

    def node_health(self, name: str) -> NodeHealth:
        return self._do(calls.node_health(name))

    def node_history(self, name: str, window: HistoryWindow = "1h") -> NodeHistory:
        return self._do(calls.node_history(name, window))

    def drain(self, name: str, draining: bool = True) -> NodeView:
        return self._do(calls.drain(name, draining))

    def remove_node(self, name: str, force: bool = False) -> None:
        """Forget a node (admin): offline or draining and empty, unless ``force``."""
        self._do(calls.remove_node(name, force))

    # -- joining nodes ---------------------------------------------------------------
    def join(self, req: JoinRequest) -> JoinAccepted:
        """Trade a join token for a runner's credentials (no API token needed)."""
        return self._do(calls.join(req))

    def create_join_token(self, spec: JoinTokenCreate) -> JoinTokenCreated:
        return self._do(calls.create_join_token(spec))

    def join_tokens(self) -> list[JoinTokenView]:
        return self._do(calls.join_tokens())

    def revoke_join_token(self, token_id: int) -> JoinTokenView:
        return self._do(calls.revoke_join_token(token_id))

    # -- container environments ---------------------------------------------------
    def _streaming(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(self._http, *args)
        except httpx.HTTPError as exc:
            raise unreachable(self.url, exc) from None

    def workspaces(self) -> list[WorkspaceView]:
        return self._do(calls.list_workspaces())

    def create_workspace(self, name: str, image: str | None = None) -> WorkspaceView:
        return self._do(calls.create_workspace(name, image))

    def start_workspace(self, name: str) -> WorkspaceView:
        return self._do(calls.workspace_action(name, "start"))

    def stop_workspace(self, name: str) -> WorkspaceView:
        return self._do(calls.workspace_action(name, "stop"))

    def delete_workspace(self, name: str, force: bool = False) -> None:
        self._streaming(envs.delete, name, force)

    def tarballs(self, name: str | None = None) -> list[EnvironmentVersionView]:
        return self._do(calls.list_tarballs(name))

    def package(
        self, name: str, on_progress: Callable[[Progress], None] | None = None
    ) -> EnvironmentVersionView:
        return self._streaming(envs.package, name, on_progress)

    def import_tarball(
        self,
        name: str,
        path: Path,
        on_upload: envs.OnBytes | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> EnvironmentVersionView:
        return self._streaming(envs.import_file, name, path, on_upload, on_progress)

    def export_tarball(
        self,
        name: str,
        dest: Path,
        version: str | None = None,
        on_bytes: envs.OnBytes | None = None,
    ) -> tuple[str, str]:
        """Download to ``dest`` (resuming ``dest.partial``); (version, digest)."""
        return self._streaming(envs.export, name, version, dest, on_bytes)

    def bootstrap(
        self,
        name: str,
        suite: str = "bookworm",
        mirror: str | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> EnvironmentVersionView:
        return self._streaming(envs.bootstrap, name, suite, mirror, on_progress)

    def run_script(
        self,
        name: str,
        stdin: bytes,
        command: str | None = None,
        on_output: Callable[[str, bytes], None] | None = None,
    ) -> int:
        """Run ``stdin`` as a shell script in workspace ``name`` (or ``command`` fed
        ``stdin``); its exit status. Output goes to ``on_output(stream, bytes)``."""
        return self._streaming(envs.run_script, name, stdin, command, on_output or _ignore)

    def logs(
        self, ref: str, stream: str = "stdout", follow: bool = False, offset: int = 0
    ) -> Iterator[bytes]:
        """The task's ``stream`` from byte ``offset`` on (with ``follow``: until it ends)."""
        params = {"stream": stream, "follow": str(follow).lower()}
        if offset:
            params["offset"] = str(offset)
        return self._bytes(calls.logs_path(ref), params)

    def batch_logs(self, batch: str, stream: str = "stdout") -> Iterator[bytes]:
        """The ``stream`` of the batch's started tasks as it is now, oldest task first,
        each line prefixed with ``[LABEL] `` (its sweep values, else its target, else
        its id)."""
        return self._bytes(calls.batch_logs_path(batch), {"stream": stream})

    def _bytes(self, path: str, params: dict[str, str]) -> Iterator[bytes]:
        """A streamed answer's bytes; the next host is tried only until one answers."""
        failure: Exception | None = None
        for url in self.urls.attempts():
            self._use(url)
            try:
                with self._http.stream(
                    "GET",
                    path.removeprefix(API_PREFIX),
                    params=params,
                    timeout=httpx.Timeout(None, connect=10),
                ) as r:
                    self.urls.answered(url)
                    if r.status_code >= 300:
                        r.read()
                        raise_for(r)
                    yield from r.iter_raw()
                return
            except NOT_SENT as exc:  # this host cannot be connected to: the next one
                failure = exc
            except httpx.HTTPError as exc:  # not again: part of the output may be out
                raise unreachable(self.url, exc) from None
        assert failure is not None
        raise unreachable(", ".join(self.urls.all), failure)

    def events(
        self, after: int | None = None, timeout: float | None = None
    ) -> Generator[Event, None, None]:
        """The event stream, ``hello`` first; with ``after``, the kept events after that
        number (or one ``reset``) before live ones. Each wait for an event is bounded by
        ``timeout`` (TimeoutError); the iteration ends when the host closes the stream."""
        url = calls.events_url(self.url, after)
        headers = {"Authorization": f"Bearer {self.token}"}
        try:
            with connect(
                url,
                additional_headers=headers,
                open_timeout=10,
                max_size=None,
                **websocket_ssl(url, self.ca_file),
            ) as ws:
                while True:
                    try:
                        text = ws.recv(timeout=timeout)
                    except ConnectionClosed:
                        return
                    yield calls.parse_event(text)
        except InvalidStatus as exc:
            raise refused("the event stream", url, exc.response.status_code) from None
        except OSError as exc:
            raise unreachable(self.url, exc) from None

    def follow_events(self, tick: float | None = None) -> Iterator[Event | None]:
        """The host's event stream, for as long as the caller reads it. A ``hello`` event
        comes first and after every reconnection (the host cuts slow subscribers): the
        caller re-reads what it follows then, as events before it may be missed. With
        ``tick``, ``None`` comes after ``tick`` seconds without an event. KawaError if
        refused or unreachable."""
        headers = {"Authorization": f"Bearer {self.token}"}
        url = calls.events_url(self.url)
        while True:
            try:
                with connect(
                    url,
                    additional_headers=headers,
                    open_timeout=10,
                    max_size=None,
                    **websocket_ssl(url, self.ca_file),
                ) as ws:
                    yield calls.parse_event(ws.recv(timeout=10))  # hello: subscribed
                    while True:
                        try:
                            yield calls.parse_event(ws.recv(timeout=tick))
                        except TimeoutError:
                            yield None
            except ConnectionClosed:
                continue
            except InvalidStatus as exc:
                raise refused("the event stream", url, exc.response.status_code) from None
            except (OSError, InvalidMessage) as exc:  # refused, or it died mid-handshake
                if self._failed_over():
                    url = calls.events_url(self.url)
                    continue
                raise unreachable(self.url, exc) from None

    def wait(self, refs: list[str], timeout: float | None = None) -> list[TaskView]:
        """Block until every task is done (final, lost or stopped), driven by the event
        stream; returns their final views in the order asked."""
        deadline = None if timeout is None else time.monotonic() + timeout
        ids: list[str] = []
        tracker = calls.WaitTracker(ids)
        headers = {"Authorization": f"Bearer {self.token}"}
        while True:
            try:
                events = calls.events_url(self.url)
                with connect(
                    events,
                    additional_headers=headers,
                    open_timeout=10,
                    max_size=None,
                    **websocket_ssl(events, self.ca_file),
                ) as ws:
                    calls.parse_event(ws.recv(timeout=10))  # hello: subscribed
                    current = [self.task(r) for r in (ids or refs)]
                    ids[:] = [t.id for t in current]
                    tracker.start(current)
                    while not tracker.done:
                        left = None if deadline is None else deadline - time.monotonic()
                        if left is not None and left <= 0:
                            raise KawaError(f"timed out waiting for {len(tracker.pending)} task(s)")
                        try:
                            event = calls.parse_event(ws.recv(timeout=left))
                        except TimeoutError:
                            continue
                        if event.task is not None:
                            tracker.seen(event.task)
                    return [tracker.final[i] for i in ids]
            except ConnectionClosed:
                continue  # the host cut a slow subscriber (or went away): re-read, go on
            except InvalidStatus as exc:
                url = calls.events_url(self.url)
                raise refused("the event stream", url, exc.response.status_code) from None
            except (OSError, InvalidMessage) as exc:  # refused, or it died mid-handshake
                if self._failed_over():
                    continue  # another listed host answers: follow its stream
                raise unreachable(self.url, exc) from None


def _ignore(stream: str, data: bytes) -> None:
    pass
