"""The host's HTTP client towards runners, authenticated with the cluster secret."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import httpx

from kawa.client.response_cycles import detach_stream
from kawa.protocol.runner_api import RemoveVps, RunnerAck, RunTask
from kawa.tls.contexts import PathLike, client_context


class RunnerUnreachable(Exception):
    """The runner did not answer (network error or timeout). ``sent`` is False when the
    request surely never reached it (no connection was made)."""

    def __init__(self, message: str, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent


_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class RunnerRejected(Exception):
    """The runner answered with an error; ``detail`` says why."""

    def __init__(self, detail: str, status: int) -> None:
        super().__init__(detail)
        self.detail, self.status = detail, status


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except ValueError:
        return response.text or f"HTTP {response.status_code}"


class RunnerLink:
    """Calls to runners; a runner serving https is verified with the CA certificates in
    ``ca_file`` (default: the system's)."""

    def __init__(
        self, cluster_secret: str, timeout: float = 60.0, ca_file: PathLike | None = None
    ) -> None:
        self.tls: ssl.SSLContext | None = client_context(ca_file)
        """What wss:// stream sessions to runners are verified with (None: the default)."""
        self._headers = {"Authorization": f"Bearer {cluster_secret}"}
        self._timeout = httpx.Timeout(timeout, connect=5.0)
        self._verify = self.tls or httpx.create_ssl_context()
        self._http = httpx.AsyncClient(
            headers=self._headers,
            timeout=self._timeout,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            verify=self._verify,
        )
        self._made = 0
        self._runners: dict[str, tuple[httpx.AsyncClient, int]] = {}
        """Base URL -> the client for calls to that runner, and its number. A connection
        pool scans all its connections for each request, so one pool for a whole fleet
        costs each order time in proportion to the fleet's size; a pool per runner does
        not."""

    async def close(self) -> None:
        clients = [self._http, *(client for client, _ in self._runners.values())]
        self._runners = {}
        for client in clients:
            await client.aclose()

    def clients_made(self) -> int:
        """How many runner clients were made so far: note it before reading the
        addresses given to :meth:`keep_only`."""
        return self._made

    async def keep_only(self, bases: Iterable[str], made_before: int) -> None:
        """Close the clients of runners at addresses not in ``bases`` (a node removed,
        or registered again elsewhere): their kept connections go with them. Only
        clients among the first ``made_before`` are closed: one made since is for an
        address newer than ``bases``."""
        kept = set(bases)
        gone = [b for b, (_, n) in self._runners.items() if b not in kept and n < made_before]
        for base in gone:
            client, _ = self._runners.pop(base)
            await client.aclose()

    def _runner(self, base: str) -> httpx.AsyncClient:
        known = self._runners.get(base)
        if known is not None:
            return known[0]
        client = httpx.AsyncClient(
            headers=self._headers,
            timeout=self._timeout,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=8),
            verify=self._verify,
        )
        self._runners[base] = (client, self._made)
        self._made += 1
        return client

    @property
    def http(self) -> httpx.AsyncClient:
        """The authenticated client, for routes that stream bodies to or from runners."""
        return self._http

    async def _post(
        self,
        base: str,
        path: str,
        json: object | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> RunnerAck:
        url, client = f"{base}{path}", self._runner(base)
        try:
            if timeout is None:
                response = await client.post(url, json=json)
            else:
                response = await client.post(url, json=json, timeout=timeout)
        except httpx.HTTPError as exc:
            sent = not isinstance(exc, _NOT_SENT)
            raise RunnerUnreachable(f"runner unreachable at {url}: {exc!r}", sent) from exc
        detach_stream(response)
        if response.status_code >= 400:
            raise RunnerRejected(_detail(response), response.status_code)
        return RunnerAck.model_validate(response.json())

    async def run(self, base: str, task: RunTask) -> RunnerAck:
        # A runner may first fetch and load the task's environment (minutes for a big
        # one); it bounds that itself, and a runner that dies drops the connection.
        wait = httpx.Timeout(None, connect=5.0) if task.environment else None
        return await self._post(base, "/tasks", task.model_dump(mode="json"), wait)

    async def control(self, base: str, task_id: str, action: str) -> RunnerAck:
        return await self._post(base, f"/tasks/{task_id}/{action}")

    async def remove_vps(self, base: str, task_id: str, force: bool) -> RunnerAck:
        body = RemoveVps(force=force).model_dump(mode="json")
        return await self._post(base, f"/tasks/{task_id}/remove", body)

    @asynccontextmanager
    async def logs(
        self, base: str, task_id: str, stream: str, follow: bool, offset: int
    ) -> AsyncIterator[httpx.Response]:
        params = {"stream": stream, "follow": str(follow).lower(), "offset": str(offset)}
        request = self._http.build_request(
            "GET",
            f"{base}/tasks/{task_id}/logs",
            params=params,
            timeout=httpx.Timeout(None, connect=5.0),
        )
        try:
            response = await self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise RunnerUnreachable(f"runner unreachable at {base}: {exc!r}") from exc
        try:
            if response.status_code >= 400:
                await response.aread()
                raise RunnerRejected(_detail(response), response.status_code)
            yield response
        finally:
            await response.aclose()
