"""The runner's calls to the host (register, heartbeat, report), authenticated with the
cluster secret."""

from __future__ import annotations

import httpx

from kawa.client.errors import raise_for, unreachable
from kawa.protocol.common import API_PREFIX
from kawa.protocol.nodes import Heartbeat, NodeRegistration, RegistrationAccepted
from kawa.protocol.runner_api import TaskReport
from kawa.tls.contexts import PathLike, httpx_verify


class HostChannel:
    def __init__(
        self,
        host_url: str,
        cluster_secret: str,
        timeout: float = 15.0,
        ca_file: PathLike | None = None,
    ) -> None:
        self.url = host_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.url + API_PREFIX + "/runner",
            timeout=timeout,
            headers={"Authorization": f"Bearer {cluster_secret}"},
            verify=httpx_verify(ca_file),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(self, path: str, body: object) -> httpx.Response:
        try:
            response = await self._http.post(path, json=body)
        except httpx.HTTPError as exc:
            raise unreachable(self.url, exc) from None
        raise_for(response)
        return response

    async def register(self, reg: NodeRegistration) -> RegistrationAccepted:
        response = await self._post("/register", reg.model_dump(mode="json"))
        return RegistrationAccepted.model_validate(response.json())

    async def heartbeat(self, hb: Heartbeat) -> None:
        await self._post("/heartbeat", hb.model_dump(mode="json"))

    async def report(self, report: TaskReport) -> None:
        await self._post("/report", report.model_dump(mode="json"))
