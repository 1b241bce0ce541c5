"""Several host URLs: parsing the list, the order they are tried in, and the runner's
channel and the client moving to the next host when one does not answer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest

from kawa.client import KawaClient
from kawa.client.errors import KawaError
from kawa.client.host_urls import HostUrls, may_resend, split_urls
from kawa.client.runner_channel import HostChannel
from kawa.protocol.nodes import Heartbeat, NodeUsageSample

A, B, C = "http://a:8420", "http://b:8420", "http://c:8420"


def test_split_urls_trims_spaces_slashes_and_empty_items() -> None:
    assert split_urls(" http://a:8420/ , http://b:8420,,") == [A, B]
    assert split_urls(A) == [A]
    with pytest.raises(KawaError):
        split_urls(" , ")


def test_attempts_start_at_the_host_that_answered_last() -> None:
    urls = HostUrls(f"{A},{B},{C}")
    assert urls.current == A and urls.attempts() == [A, B, C]
    urls.answered(B)
    assert urls.current == B and urls.attempts() == [B, C, A]
    urls.answered(A)
    assert urls.attempts() == [A, B, C]


def _transport(answers: dict[str, int | None], seen: list[str]) -> httpx.MockTransport:
    """Each host answers its status, or refuses the connection (None)."""

    def handle(request: httpx.Request) -> httpx.Response:
        origin = f"{request.url.scheme}://{request.url.host}:{request.url.port}"
        seen.append(origin)
        status = answers[origin]
        if status is None:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(status, json={"detail": "standing by"} if status >= 400 else {})

    return httpx.MockTransport(handle)


def _heartbeat() -> Heartbeat:
    usage = NodeUsageSample(
        at=datetime.now(UTC), cpu_percent=0.0, memory_used=0, memory_percent=0.0
    )
    return Heartbeat(name="r1", usage=usage, tasks=[])


def _channel(answers: dict[str, int | None], seen: list[str]) -> HostChannel:
    channel = HostChannel(f"{A},{B},{C}", "secret")
    asyncio.run(channel.aclose())
    channel._http = httpx.AsyncClient(transport=_transport(answers, seen))
    return channel


def test_runner_channel_skips_unreachable_and_standing_by_hosts() -> None:
    seen: list[str] = []
    channel = _channel({A: None, B: 503, C: 200}, seen)
    asyncio.run(channel.heartbeat(_heartbeat()))
    assert seen == [A, B, C] and channel.url == C
    seen.clear()
    asyncio.run(channel.heartbeat(_heartbeat()))
    assert seen == [C]  # the leader found is asked first from then on


def test_runner_channel_raises_the_last_failure_when_no_host_takes_the_call() -> None:
    channel = _channel({A: None, B: 503, C: 503}, [])
    with pytest.raises(KawaError) as failed:
        asyncio.run(channel.heartbeat(_heartbeat()))
    assert failed.value.status == 503


def test_runner_channel_does_not_hide_other_errors() -> None:
    seen: list[str] = []
    channel = _channel({A: 401, B: 200, C: 200}, seen)
    with pytest.raises(KawaError) as failed:
        asyncio.run(channel.heartbeat(_heartbeat()))
    assert failed.value.status == 401 and seen == [A]


def test_client_moves_to_the_next_host_only_when_the_first_cannot_be_connected_to() -> None:
    seen: list[str] = []
    client = KawaClient(f"{A},{B}", "token")
    client._http.close()
    client._http = httpx.Client(
        base_url=A + "/api/v1", transport=_transport({A: None, B: 200}, seen)
    )
    assert client.health() == {}
    assert seen == [A, B] and client.url == B
    seen.clear()
    client.health()
    assert seen == [B]
    client.close()


def test_client_names_every_host_when_none_answers() -> None:
    client = KawaClient(f"{A},{B}", "token")
    client._http.close()
    client._http = httpx.Client(
        base_url=A + "/api/v1", transport=_transport({A: None, B: None}, [])
    )
    with pytest.raises(KawaError, match="http://a:8420, http://b:8420"):
        client.health()
    client.close()


def test_logs_come_from_the_next_host_when_the_first_cannot_be_connected_to() -> None:
    seen: list[str] = []
    client = KawaClient(f"{A},{B}", "token")
    client._http.close()

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(f"http://{request.url.host}:{request.url.port}")
        if request.url.host == "a":
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, stream=httpx.ByteStream(b"output\n"))

    transport = httpx.MockTransport(handle)
    client._http = httpx.Client(base_url=A + "/api/v1", transport=transport)
    assert b"".join(client.logs("12")) == b"output\n"
    assert seen == [A, B] and client.url == B
    client.close()


def test_only_requests_that_change_nothing_are_resent_after_they_left() -> None:
    request = httpx.Request("GET", A)
    refused = httpx.ConnectError("refused", request=request)
    reset = httpx.ReadError("connection reset by peer", request=request)
    assert may_resend("POST", refused) and may_resend("GET", refused)
    assert may_resend("GET", reset) and may_resend("head", reset)
    assert not may_resend("POST", reset) and not may_resend("DELETE", reset)
    assert not may_resend("GET", httpx.DecodingError("bad gzip", request=request))


def test_a_read_goes_to_the_next_host_when_its_host_dies_answering_a_submission_not() -> None:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.host}")
        if request.url.host == "a":
            raise httpx.ReadError("connection reset by peer", request=request)
        return httpx.Response(200, json={"status": "ok"})

    client = KawaClient(f"{A},{B}", "token")
    client._http.close()
    client._http = httpx.Client(base_url=A + "/api/v1", transport=httpx.MockTransport(handle))
    assert client.health() == {"status": "ok"} and client.url == B
    client._use(A)
    client.urls.answered(A)
    with pytest.raises(KawaError, match="http://a:8420"):
        client.remove_node("n1")  # a POST that may have been done: not sent again
    assert seen == ["GET a", "GET b", "POST a"]
    client.close()
