"""The runner's calls to the host (register, heartbeat, report), authenticated with the
cluster secret. With several host URLs (hosts sharing one database), a call goes to the
host that answered last, and to the next one when that host cannot be reached or
answers 503 (it stands by: only the leading host takes runners' calls)."""

from __future__ import annotations

import logging

import httpx

from kawa.client.errors import KawaError, raise_for, unreachable
from kawa.client.host_urls import HostUrls
from kawa.client.response_cycles import detach_stream
from kawa.protocol.common import API_PREFIX
from kawa.protocol.nodes import Heartbeat, NodeRegistration, RegistrationAccepted
from kawa.protocol.runner_api import TaskReport
from kawa.tls.contexts import PathLike, httpx_verify

log = logging.getLogger(__name__)

STANDING_BY = 503
"""What a host that does not lead answers a runner's call with."""


class HostChannel:
    def __init__(
        self,
        host_url: str,
        cluster_secret: str,
        timeout: float = 15.0,
        ca_file: PathLike | None = None,
    ) -> None:
        self.urls = HostUrls(host_url)
        self._http = httpx.AsyncClient(
            timeout=timeout,
            headers={"Authorization": f"Bearer {cluster_secret}"},
            verify=httpx_verify(ca_file),
        )

    @property
    def url(self) -> str:
        """The host the last call went to (or goes to next)."""
        return self.urls.current

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(self, path: str, body: object) -> httpx.Response:
        """POST to each host in turn until one takes the call; the last failure when
        none does. The calls are safe to repeat (a host dedupes them by task and node)."""
        failure: KawaError | None = None
        for url in self.urls.attempts():
            try:
                response = await self._http.post(url + API_PREFIX + "/runner" + path, json=body)
            except httpx.HTTPError as exc:
                failure = unreachable(url, exc)
                continue
            detach_stream(response)
            if response.status_code == STANDING_BY and len(self.urls) > 1:
                try:
                    raise_for(response)
                except KawaError as exc:
                    failure = exc
                continue
            raise_for(response)
            if url != self.urls.current:
                log.info("talking to the host at %s from now on", url)
            self.urls.answered(url)
            return response
        assert failure is not None
        raise failure

    async def register(self, reg: NodeRegistration) -> RegistrationAccepted:
        response = await self._post("/register", reg.model_dump(mode="json"))
        return RegistrationAccepted.model_validate(response.json())

    async def heartbeat(self, hb: Heartbeat) -> None:
        await self._post("/heartbeat", hb.model_dump(mode="json"))

    async def report(self, report: TaskReport) -> None:
        await self._post("/report", report.model_dump(mode="json"))
