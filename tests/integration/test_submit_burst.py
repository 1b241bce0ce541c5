"""Bursts of submissions against a real host: each is stored, or refused at once with
429 and ``Retry-After`` (never dropped, never a 5xx), and the typed client sends the
refused ones again until they are stored."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kawa.client.async_client import AsyncKawaClient
from kawa.protocol.tasks import TaskSpec
from tests.conftest import BASE_IMAGE
from tests.integration.cluster import Cluster

BURST = 500
CLIENTS = 10
LIMIT = 32
"""The host's ``submit_limit`` here: far below the burst, so most are refused first."""


@pytest.fixture(scope="module")
def drained(docker_available: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A host with a small submission limit and one drained node: tasks stay pending."""
    c = Cluster(
        Path(tmp_path_factory.mktemp("burst")),
        BASE_IMAGE,
        extra_host_env={"KAWA_HOST_SUBMIT_LIMIT": str(LIMIT)},
    )
    try:
        c.start_host()
        c.add_runner("n1", cores=2)
        with c.client() as client:
            client.drain("n1")
        yield c
    finally:
        c.close()


def total(c: Cluster) -> int:
    with c.client() as client:
        return client.task_counts().total


def test_a_burst_of_submissions_through_the_async_client_is_all_stored(drained: Cluster) -> None:
    before = total(drained)
    statuses: Counter[int] = Counter()

    async def seen(response: httpx.Response) -> None:
        statuses[response.status_code] += 1

    async def burst() -> list[str]:
        """Every submission sent at once, from ten clients (one connection pool for all
        would spend more time finding a connection than the host takes to answer)."""
        clients = [
            AsyncKawaClient(drained.url, drained.token, timeout=120, max_connections=BURST)
            for _ in range(CLIENTS)
        ]
        for client in clients:
            client._http.event_hooks["response"].append(seen)  # count what the host answered
        spec = TaskSpec(command=["true"], name="burst")
        try:
            made = await asyncio.gather(*(clients[n % CLIENTS].submit(spec) for n in range(BURST)))
        finally:
            for client in clients:
                await client.aclose()
        return [t.id for r in made for t in r.tasks]

    ids = asyncio.run(burst())
    assert len(set(ids)) == BURST
    assert total(drained) - before == BURST
    assert statuses[201] == BURST
    assert set(statuses) <= {201, 429}, statuses  # nothing else: no 5xx
    assert statuses[429] > 0, "the burst never reached the host's limit"


def test_past_its_limit_the_host_answers_429_with_retry_after(drained: Cluster) -> None:
    """A sweep of 10,000 tasks holds a submission slot for a while; small submissions sent
    meanwhile, with no retry, are refused (the limit is 32: the sweep and 31 of them are
    in flight) and store nothing."""
    before = total(drained)
    done: list[httpx.Response] = []

    def sweep() -> None:
        """Sent until stored: it may come while a round of probes fills every slot (the
        probes of a round are stored together and answered together)."""
        with httpx.Client(headers=auth(drained), timeout=120) as http:
            body = {"command": ["echo", "span:{1..10000}"], "sweep": True}
            deadline = time.monotonic() + 60
            while True:
                answer = http.post(f"{drained.url}/api/v1/tasks", json=body)
                if answer.status_code != 429 or time.monotonic() > deadline:
                    break
                time.sleep(float(answer.headers["retry-after"]))
            done.append(answer)

    big = threading.Thread(target=sweep)
    big.start()
    refused: list[httpx.Response] = []
    stored = 0

    async def probe() -> None:
        nonlocal stored
        async with httpx.AsyncClient(headers=auth(drained), timeout=60) as http:
            deadline = time.monotonic() + 60
            while big.is_alive() and not refused and time.monotonic() < deadline:
                answers = await asyncio.gather(
                    *(
                        http.post(f"{drained.url}/api/v1/tasks", json={"command": ["true"]})
                        for _ in range(LIMIT)
                    )
                )
                stored += sum(r.status_code == 201 for r in answers)
                refused.extend(r for r in answers if r.status_code == 429)
                assert {r.status_code for r in answers} <= {201, 429}

    asyncio.run(probe())
    big.join(120)
    assert done and done[0].status_code == 201, done
    assert refused, "no submission was refused while the sweep was in flight"
    assert refused[0].headers["retry-after"] == "1"
    assert "retry" in refused[0].json()["detail"]
    assert total(drained) - before == 10_000 + stored


def auth(c: Cluster) -> dict[str, str]:
    return {"Authorization": f"Bearer {c.token}"}
