"""Memory and duration strings: parsing, formatting and their round trips."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kawa.core.units import (
    MAX_MEMORY,
    UnitError,
    format_duration,
    format_memory,
    parse_duration,
    parse_memory,
)

PROPERTY = settings(max_examples=200, deadline=None, database=None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1024", 1024),
        ("1", 1),
        ("512M", 512_000_000),
        ("512m", 512_000_000),
        ("4G", 4_000_000_000),
        ("4g", 4_000_000_000),
        ("4GB", 4_000_000_000),
        ("4gb", 4_000_000_000),
        ("2048K", 2_048_000),
        ("2k", 2_000),
        ("1T", 10**12),
        ("1Ki", 1024),
        ("1KiB", 1024),
        ("2Mi", 2 * 1024**2),
        ("4GiB", 4 * 1024**3),
        ("4gib", 4 * 1024**3),
        ("1Ti", 1024**4),
        ("1.5G", 1_500_000_000),
        ("0.5K", 500),
        (".5M", 500_000),
        ("1.5Gi", 3 * 1024**3 // 2),
        ("512B", 512),
        ("512b", 512),
        ("  4G  ", 4_000_000_000),
        ("4 G", 4_000_000_000),
        ("+1K", 1000),
    ],
)
def test_parse_memory_accepts(text: str, expected: int) -> None:
    assert parse_memory(text) == expected


@pytest.mark.parametrize(
    ("text", "mentions"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("-1G", "negative"),
        ("0", "at least one byte"),
        ("0G", "at least one byte"),
        ("0.0001", "at least one byte"),
        ("12XB", "'XB'"),
        ("5P", "'P'"),
        ("4Gii", "'Gii'"),
        ("nan", "'nan'"),
        ("inf", "'inf'"),
        ("1e3", "'1e3'"),
        ("G", "'G'"),
        ("1.2.3G", "'1.2.3G'"),
        ("4G!", "'4G!'"),
        ("\u0661\u0662G", "'\u0661\u0662G'"),  # Arabic-Indic digits
        ("99999999999T", "larger than"),
    ],
)
def test_parse_memory_rejects(text: str, mentions: str) -> None:
    with pytest.raises(UnitError) as caught:
        parse_memory(text)
    message = str(caught.value)
    assert mentions in message
    assert repr(text) in message
    assert "Gi" in message  # the accepted forms are shown


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (4_000_000_000, "4G"),
        (1_500_000_000, "1.5G"),
        (512, "512B"),
        (0, "0B"),
        (999, "999B"),
        (1000, "1K"),
        (512_000_000, "512M"),
        (10**12, "1T"),
        (2_500 * 10**12, "2500T"),
        (1_234_567_891, "1.234567891G"),
    ],
)
def test_format_memory(size: int, expected: str) -> None:
    assert format_memory(size) == expected


def test_format_memory_rounds_for_display() -> None:
    assert format_memory(1_234_567_891, digits=2) == "1.23G"
    assert format_memory(1_999_999_999, digits=1) == "2G"
    assert format_memory(512, digits=1) == "512B"


def test_format_memory_rejects_negative() -> None:
    with pytest.raises(UnitError, match="-5"):
        format_memory(-5)


@PROPERTY
@given(st.integers(min_value=1, max_value=MAX_MEMORY))
def test_memory_format_then_parse_is_identity(size: int) -> None:
    assert parse_memory(format_memory(size)) == size


@PROPERTY
@given(
    st.integers(min_value=1, max_value=10**6),
    st.sampled_from(["", "K", "M", "G", "T", "Ki", "Mi", "Gi", "Ti"]),
    st.sampled_from(["", "B", "b"]),
    st.booleans(),
)
def test_memory_parse_then_format_is_stable(
    number: int, unit: str, byte_suffix: str, lower: bool
) -> None:
    written = f"{number}{unit}{byte_suffix if unit or byte_suffix else ''}"
    if lower:
        written = written.lower()
    size = parse_memory(written)
    assert size > 0
    assert parse_memory(format_memory(size)) == size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90", 90.0),
        ("1", 1.0),
        ("0.25", 0.25),
        ("90s", 90.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        ("1.5h", 5400.0),
        ("500ms", 0.5),
        ("1s500ms", 1.5),
        ("1d2h3m4s5ms", 93784.005),
        ("2H", 7200.0),
        (" 10m ", 600.0),
        ("0h5m", 300.0),
    ],
)
def test_parse_duration_accepts(text: str, expected: float) -> None:
    assert parse_duration(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "mentions"),
    [
        ("", "empty"),
        ("0", "greater than zero"),
        ("0s", "greater than zero"),
        ("-5m", "negative"),
        ("5x", "'x'"),
        ("h", "'h'"),
        ("1h1h", "'h'"),
        ("30m1h", "'h'"),
        ("inf", "'inf'"),
        ("nan", "'nan'"),
        ("1h30", "'30'"),
        ("5 minutes", "'minutes'"),
    ],
)
def test_parse_duration_rejects(text: str, mentions: str) -> None:
    with pytest.raises(UnitError) as caught:
        parse_duration(text)
    message = str(caught.value)
    assert mentions in message
    assert repr(text) in message
    assert "1h30m" in message  # the accepted forms are shown


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (5400, "1h30m"),
        (0.4, "0.4s"),
        (75, "1m15s"),
        (0, "0s"),
        (60, "1m"),
        (86400, "1d"),
        (90061.5, "1d1h1m1.5s"),
        (0.0001, "0.0001s"),
        (59.9999, "1m"),
    ],
)
def test_format_duration(seconds: float, expected: str) -> None:
    assert format_duration(seconds) == expected


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_format_duration_rejects(bad: float) -> None:
    with pytest.raises(UnitError):
        format_duration(bad)


@PROPERTY
@given(st.integers(min_value=1, max_value=10**10))
def test_duration_format_then_parse_is_identity_to_the_millisecond(millis: int) -> None:
    seconds = millis / 1000
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, abs=1e-6)
