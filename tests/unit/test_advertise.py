"""How a runner finds the address it advertises, and what a join token looks like."""

from __future__ import annotations

import socket

import pytest

from kawa.advertise import advertise_url, local_address_towards, url_host
from kawa.protocol.join import token_cluster


def test_the_route_to_loopback_leaves_from_loopback() -> None:
    assert local_address_towards("127.0.0.1") == "127.0.0.1"
    assert advertise_url("http://127.0.0.1:8420", 8421, tls=False) == "http://127.0.0.1:8421"
    assert advertise_url("https://127.0.0.1:8420", 9000, tls=True) == "https://127.0.0.1:9000"


def test_a_runner_bound_to_one_address_advertises_it() -> None:
    url = advertise_url("http://192.0.2.7:8420", 8421, tls=False, bind="10.1.2.3")
    assert url == "http://10.1.2.3:8421"
    assert advertise_url("http://h:1", 8421, tls=False, bind="fd00::1") == "http://[fd00::1]:8421"


def test_without_a_route_the_hostname_is_advertised() -> None:
    url = advertise_url("http://no-such-host.invalid:8420", 8421, tls=False)
    assert url == f"http://{socket.gethostname()}:8421"
    assert local_address_towards("no-such-host.invalid") is None


@pytest.mark.parametrize(
    ("address", "shown"), [("10.0.0.1", "10.0.0.1"), ("::1", "[::1]"), ("[::1]", "[::1]")]
)
def test_url_host(address: str, shown: str) -> None:
    assert url_host(address) == shown


@pytest.mark.parametrize(
    ("token", "cluster"),
    [
        ("kawajoin.abc123.ff00", "abc123"),
        (" kawajoin.abc123.ff00\n", "abc123"),
        ("kawajoin..ff00", None),
        ("kawajoin.abc123.", None),
        ("kawa_abcdef", None),
        ("kawajoin.a.b.c", None),
        ("", None),
    ],
)
def test_token_cluster(token: str, cluster: str | None) -> None:
    assert token_cluster(token) == cluster

