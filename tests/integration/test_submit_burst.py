"""Bursts of submissions against a real host: each is stored, or refused at once with
429 and ``Retry-After`` (never dropped, never a 5xx), and the typed client sends the
refused ones again until they are stored."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def writes_held(c: Cluster) -> Iterator[sqlite3.Connection]:
    """The host's database write lock, held by a writer of the test's own: the host's
    submissions wait in flight until it is let go (well within the host's 5 s busy
    timeout), so its limit is reached for certain, not by chance."""
    db = sqlite3.connect(c.host_config().data_dir / "kawa.db", isolation_level=None, timeout=10)
    try:
        db.execute("BEGIN IMMEDIATE")
        yield db
    finally:
        if db.in_transaction:
            db.execute("ROLLBACK")
        db.close()


def test_a_burst_of_submissions_through_the_async_client_is_all_stored(drained: Cluster) -> None:
    before = total(drained)
    statuses: Counter[int] = Counter()

    with writes_held(drained) as db:

        async def seen(response: httpx.Response) -> None:
            statuses[response.status_code] += 1
            if response.status_code == 429 and db.in_transaction:
                db.execute("ROLLBACK")  # the limit is reached: let them be stored

        async def burst() -> list[str]:
            """Every submission sent at once, from ten clients (one connection pool for
            all would spend more time finding a connection than the host takes to
            answer); a refused one is sent again by the client after Retry-After."""
            clients = [
                AsyncKawaClient(drained.url, drained.token, timeout=120, max_connections=BURST)
                for _ in range(CLIENTS)
            ]
            for client in clients:
                client._http.event_hooks["response"].append(seen)  # count what the host answered
            spec = TaskSpec(command=["true"], name="burst")
            try:
                made = await asyncio.gather(
                    *(clients[n % CLIENTS].submit(spec) for n in range(BURST))
                )
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
    """While ``LIMIT`` submissions wait in flight (the database's write lock held
    elsewhere), the ones sent beside them are refused at once with 429 and Retry-After
    and store nothing; the waiting ones are stored once the lock is let go."""
    before = total(drained)
    extra = 8
    url = f"{drained.url}/api/v1/tasks"

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=LIMIT + extra)
        async with httpx.AsyncClient(headers=auth(drained), timeout=60, limits=limits) as http:
            with writes_held(drained) as db:
                sent = [
                    asyncio.create_task(http.post(url, json={"command": ["true"]}))
                    for _ in range(LIMIT + extra)
                ]
                # none can be stored while the lock is held: past the limit, refusals
                refused = 0
                for answer in asyncio.as_completed(sent, timeout=4):
                    if (await answer).status_code == 429:
                        refused += 1
                    if refused == extra:
                        break
                db.execute("ROLLBACK")
            return list(await asyncio.gather(*sent))

    answers = asyncio.run(burst())
    codes = Counter(r.status_code for r in answers)
    assert codes == {201: LIMIT, 429: extra}, codes
    refused = next(r for r in answers if r.status_code == 429)
    assert refused.headers["retry-after"] == "1"
    assert "retry" in refused.json()["detail"]
    assert total(drained) - before == LIMIT


def auth(c: Cluster) -> dict[str, str]:
    return {"Authorization": f"Bearer {c.token}"}
