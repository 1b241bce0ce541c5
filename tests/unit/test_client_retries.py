"""When the client sends a call again that the host refused as too busy (429)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from kawa.client.retries import (
    FIRST_DELAY,
    MAX_DELAY,
    MAX_RETRIES,
    retry_after,
    retry_delay,
)

NOW = datetime(2026, 12, 3, 9, 0, 0, tzinfo=UTC)


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after("3") == 3.0
    assert retry_after(" 0 ") == 0.0
    assert retry_after(format_datetime(NOW + timedelta(seconds=7), usegmt=True), NOW) == 7.0
    assert retry_after(format_datetime(NOW - timedelta(seconds=7), usegmt=True), NOW) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-1", "1.5e3x"])
def test_an_absent_or_unreadable_retry_after_is_none(value: str | None) -> None:
    assert retry_after(value) is None


@pytest.mark.parametrize("status", [200, 201, 400, 409, 500, 503])
def test_only_429_is_sent_again(status: int) -> None:
    assert retry_delay(status, "1", 0) is None


def test_the_host_s_retry_after_is_waited() -> None:
    assert retry_delay(429, "2", 0) == 2.0
    assert retry_delay(429, "2", 5) == 2.0  # the host's word, not a backoff


def test_without_retry_after_the_wait_doubles() -> None:
    waits = [retry_delay(429, None, n) for n in range(4)]
    assert waits == [FIRST_DELAY, 2 * FIRST_DELAY, 4 * FIRST_DELAY, 8 * FIRST_DELAY]


def test_jitter_lengthens_a_wait_up_to_twice() -> None:
    assert retry_delay(429, "2", 0, jitter=1.0) == 4.0
    assert retry_delay(429, "2", 0, jitter=0.5) == 3.0
    assert retry_delay(429, "2", 0, jitter=7.0) == 4.0  # clamped
    assert retry_delay(429, "2", 0, jitter=-1.0) == 2.0


def test_waits_are_capped() -> None:
    assert retry_delay(429, "3600", 0) == MAX_DELAY
    assert retry_delay(429, "3600", 0, jitter=1.0) == MAX_DELAY
    assert retry_delay(429, None, MAX_RETRIES - 1) == MAX_DELAY


def test_retries_are_bounded() -> None:
    assert retry_delay(429, "1", MAX_RETRIES - 1) is not None
    assert retry_delay(429, "1", MAX_RETRIES) is None
    assert retry_delay(429, "1", 2, max_retries=2) is None
