"""The asynchronous client: the same API as :class:`KawaClient`, awaitable."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import datetime
from typing import Any, TypeVar

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidMessage

from kawa.client import calls, retries
from kawa.client.errors import KawaError, raise_for, unreachable
from kawa.client.host_urls import HostUrls, may_resend
from kawa.protocol.audit import AuditEntryView
from kawa.protocol.common import API_PREFIX
from kawa.protocol.events import Event
from kawa.protocol.history import HistoryWindow, NodeHistory
from kawa.protocol.meta import HostInfo, SshKeyPair, WhoAmI
from kawa.protocol.nodes import NodeView
from kawa.protocol.task_queries import DryRunResponse, TaskCounts
from kawa.protocol.tasks import SubmitResponse, TaskAction, TaskSpec, TaskView
from kawa.tls.contexts import PathLike, httpx_verify, websocket_ssl

T = TypeVar("T")


class AsyncKawaClient:
    def __init__(
        self,
        url: str,
        token: str,
        timeout: float = 30.0,
        ca_file: PathLike | None = None,
        max_connections: int = 100,
    ) -> None:
        self.urls = HostUrls(url)
        self.url = self.urls.current
        """The host in use: the first of the comma-separated ``url`` that answers."""
        self.token = token
        self.ca_file = ca_file
        try:
            self._http = httpx.AsyncClient(
                base_url=self.url + API_PREFIX,
                timeout=timeout,
                headers={"Authorization": f"Bearer {token}"},
                limits=httpx.Limits(max_connections=max_connections),
                verify=httpx_verify(ca_file),
            )
        except httpx.InvalidURL as exc:
            raise KawaError(f"bad host URL {url!r}: {exc}") from None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncKawaClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def _do(self, call: calls.Call[T]) -> T:
        """Send ``call`` (:meth:`_send`); one the host refuses as too busy (429) is sent
        again after the ``Retry-After`` it asks, a bounded number of times
        (:mod:`kawa.client.retries`)."""
        attempt = 0
        while True:
            response = await self._send(call)
            wait = retries.retry_delay(
                response.status_code, response.headers.get("retry-after"), attempt, random.random()
            )
            if wait is None:
                return calls.decode(call, response)
            await asyncio.sleep(wait)
            attempt += 1

    async def _send(self, call: calls.Call[T]) -> httpx.Response:
        """``call``'s answer from the host in use; when it cannot be connected to (the
        request was not sent), or a request that changes nothing fails, from the next
        of the listed hosts."""
        failure: Exception | None = None
        for url in self.urls.attempts():
            self._use(url)
            try:
                response = await self._http.request(
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

    async def _failed_over(self) -> bool:
        """After the host in use stopped answering: whether another of the listed hosts
        answers now (it is then the one in use)."""
        if len(self.urls) < 2:
            return False
        before = self.url
        try:
            await self.health()
        except KawaError:
            return False
        return self.url != before

    async def audit(
        self, user: str | None = None, since: datetime | None = None, limit: int = 100
    ) -> list[AuditEntryView]:
        """The audit trail, newest first (admin only)."""
        return await self._do(calls.audit(user, since, limit))

    async def health(self) -> dict[str, Any]:
        return await self._do(calls.health())

    async def submit(self, spec: TaskSpec) -> SubmitResponse:
        return await self._do(calls.submit(spec))

    async def dry_run(self, spec: TaskSpec) -> DryRunResponse:
        """What submitting ``spec`` now would do, task by task; nothing is stored."""
        return await self._do(calls.dry_run(spec))

    async def task_counts(self) -> TaskCounts:
        return await self._do(calls.task_counts())

    async def whoami(self) -> WhoAmI:
        return await self._do(calls.whoami())

    async def info(self) -> HostInfo:
        return await self._do(calls.info())

    async def new_ssh_key(self) -> SshKeyPair:
        """A new Ed25519 key pair made by the host, which keeps no copy (shown once)."""
        return await self._do(calls.new_ssh_key())

    async def node_history(self, name: str, window: HistoryWindow = "1h") -> NodeHistory:
        return await self._do(calls.node_history(name, window))

    async def task(self, ref: str) -> TaskView:
        return await self._do(calls.get_task(ref))

    async def tasks(
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
        return await self._do(calls.list_tasks(states, node, batch, kind, limit, owner, q, before))

    async def act(self, ref: str, action: TaskAction) -> TaskView:
        return await self._do(calls.act(ref, action))

    async def remove_vps(self, ref: str, force: bool = False) -> TaskView:
        """Remove a VPS's container and snapshots (``force``: stop a running one first)."""
        return await self._do(calls.remove_vps(ref, force))

    async def nodes(self) -> list[NodeView]:
        return await self._do(calls.list_nodes())

    async def logs(
        self, ref: str, stream: str = "stdout", follow: bool = False
    ) -> AsyncIterator[bytes]:
        params = {"stream": stream, "follow": str(follow).lower()}
        async for chunk in self._bytes(calls.logs_path(ref), params):
            yield chunk

    async def batch_logs(self, batch: str, stream: str = "stdout") -> AsyncIterator[bytes]:
        """The ``stream`` of the batch's started tasks as it is now, oldest task first,
        each line prefixed with ``[LABEL] ``."""
        async for chunk in self._bytes(calls.batch_logs_path(batch), {"stream": stream}):
            yield chunk

    async def _bytes(self, path: str, params: dict[str, str]) -> AsyncIterator[bytes]:
        async with self._http.stream(
            "GET",
            path.removeprefix(API_PREFIX),
            params=params,
            timeout=httpx.Timeout(None, connect=10),
        ) as r:
            if r.status_code >= 300:
                await r.aread()
                raise_for(r)
            async for chunk in r.aiter_raw():
                yield chunk

    async def events(self, after: int | None = None) -> AsyncGenerator[Event, None]:
        """The event stream, ``hello`` first; with ``after``, the kept events after that
        number (or one ``reset``) before live ones. Ends when the host closes it."""
        url = calls.events_url(self.url, after)
        headers = {"Authorization": f"Bearer {self.token}"}
        async with connect(
            url, additional_headers=headers, max_size=None, **websocket_ssl(url, self.ca_file)
        ) as ws:
            while True:
                try:
                    text = await ws.recv()
                except ConnectionClosed:
                    return
                yield calls.parse_event(text)

    async def wait(self, refs: list[str], timeout: float | None = None) -> list[TaskView]:
        """Wait for every task to be done, driven by the event stream."""
        ids: list[str] = []
        tracker = calls.WaitTracker(ids)
        headers = {"Authorization": f"Bearer {self.token}"}

        async def follow() -> list[TaskView]:
            while True:
                try:
                    events = calls.events_url(self.url)
                    async with connect(
                        events,
                        additional_headers=headers,
                        max_size=None,
                        **websocket_ssl(events, self.ca_file),
                    ) as ws:
                        calls.parse_event(await ws.recv())
                        current = [await self.task(r) for r in (ids or refs)]
                        ids[:] = [t.id for t in current]
                        tracker.start(current)
                        while not tracker.done:
                            event = calls.parse_event(await ws.recv())
                            if event.task is not None:
                                tracker.seen(event.task)
                        return [tracker.final[i] for i in ids]
                except ConnectionClosed:
                    continue
                except (OSError, InvalidMessage) as exc:  # refused, or died mid-handshake
                    if await self._failed_over():
                        continue  # another listed host answers: follow its stream
                    raise unreachable(self.url, exc) from None

        try:
            return await asyncio.wait_for(follow(), timeout)
        except TimeoutError:
            raise KawaError(f"timed out waiting for {len(tracker.pending)} task(s)") from None
