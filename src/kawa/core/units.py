"""Memory sizes and durations: parsing user text and formatting numbers back.

Memory: ``K/M/G/T`` are 1000-based (as in the tools our users come from), ``Ki/Mi/Gi/Ti``
are 1024-based, a trailing ``B`` is optional and unit letters are case-insensitive.
Durations: ``90``, ``90s``, ``5m``, ``2h``, ``1d``, ``1h30m``, ``1.5h``, ``500ms``.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_UP, Decimal

MEMORY_FORMS = (
    "a positive number of bytes with an optional unit: 1024, 512M, 4G, 1.5G, 4GB, 2Gi, 4GiB "
    "(K/M/G/T are 1000-based, Ki/Mi/Gi/Ti are 1024-based)"
)
DURATION_FORMS = (
    "a positive duration: 90 (seconds), 90s, 5m, 2h, 1d, 1h30m, 1.5h, 500ms "
    "(units d, h, m, s, ms, largest first, each at most once)"
)

MAX_MEMORY = 2**63 - 1
"""Largest size a memory string may name (it must fit a signed 64-bit column)."""

_MEMORY_UNITS: dict[str, int] = {
    "": 1,
    "k": 10**3,
    "m": 10**6,
    "g": 10**9,
    "t": 10**12,
    "ki": 2**10,
    "mi": 2**20,
    "gi": 2**30,
    "ti": 2**40,
}
_FORMAT_UNITS: tuple[tuple[str, int], ...] = (
    ("T", 10**12),
    ("G", 10**9),
    ("M", 10**6),
    ("K", 10**3),
)
_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_MEMORY_RE = re.compile(rf"(?P<sign>[+-]?)(?P<number>{_NUMBER})\s*(?P<unit>[A-Za-z]*)", re.ASCII)

_DURATION_UNITS: dict[str, Decimal] = {
    "d": Decimal(86400),
    "h": Decimal(3600),
    "m": Decimal(60),
    "s": Decimal(1),
    "ms": Decimal("0.001"),
}
_DURATION_ORDER = tuple(_DURATION_UNITS)
_DURATION_PART_RE = re.compile(rf"({_NUMBER})\s*([A-Za-z]+)\s*", re.ASCII)


class UnitError(ValueError):
    """A memory size or duration string that cannot be understood."""


def _memory_error(text: str, reason: str) -> UnitError:
    return UnitError(f"invalid memory size {text!r}: {reason}; expected {MEMORY_FORMS}")


def parse_memory(text: str) -> int:
    """Bytes named by ``text`` (e.g. ``"512M"`` -> 512_000_000); raises :class:`UnitError`."""
    stripped = text.strip()
    if not stripped:
        raise _memory_error(text, "it is empty")
    match = _MEMORY_RE.fullmatch(stripped)
    if match is None:
        raise _memory_error(text, "it is not a number with a unit")
    if match["sign"] == "-":
        raise _memory_error(text, "it is negative")
    unit = match["unit"].lower()
    if unit.endswith("b"):
        unit = unit[:-1]
    factor = _MEMORY_UNITS.get(unit)
    if factor is None:
        raise _memory_error(text, f"unknown unit {match['unit']!r}")
    rounded = (Decimal(match["number"]) * factor).to_integral_value(rounding=ROUND_HALF_UP)
    if rounded <= 0:
        raise _memory_error(text, "it must be at least one byte")
    if rounded > MAX_MEMORY:
        raise _memory_error(text, f"it is larger than {MAX_MEMORY} bytes")
    return int(rounded)


def _decimal_text(value: Decimal) -> str:
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def format_memory(n: int, *, digits: int | None = None) -> str:
    """``n`` bytes as text with a 1000-based unit: 4_000_000_000 -> ``"4G"``, 512 -> ``"512B"``.

    Exact by default (``parse_memory`` gives ``n`` back); ``digits`` rounds to that
    many decimals for display.
    """
    if n < 0:
        raise UnitError(f"cannot format a negative memory size ({n})")
    for suffix, factor in _FORMAT_UNITS:
        if n >= factor:
            value = Decimal(n) / Decimal(factor)
            if digits is not None:
                value = value.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
            return _decimal_text(value) + suffix
    return f"{n}B"


def _duration_error(text: str, reason: str) -> UnitError:
    return UnitError(f"invalid duration {text!r}: {reason}; expected {DURATION_FORMS}")


def parse_duration(text: str) -> float:
    """Seconds named by ``text`` (``"1h30m"`` -> 5400.0); raises :class:`UnitError`."""
    stripped = text.strip()
    if not stripped:
        raise _duration_error(text, "it is empty")
    if stripped.startswith("-"):
        raise _duration_error(text, "it is negative")
    if re.fullmatch(_NUMBER, stripped, re.ASCII):
        total = Decimal(stripped)
    else:
        total = Decimal(0)
        position = 0
        last_unit = -1
        while position < len(stripped):
            match = _DURATION_PART_RE.match(stripped, position)
            if match is None:
                raise _duration_error(text, f"cannot read {stripped[position:]!r}")
            number, unit = match[1], match[2].lower()
            if unit not in _DURATION_UNITS:
                raise _duration_error(text, f"unknown unit {match[2]!r}")
            rank = _DURATION_ORDER.index(unit)
            if rank <= last_unit:
                raise _duration_error(text, f"unit {match[2]!r} is repeated or out of order")
            last_unit = rank
            total += Decimal(number) * _DURATION_UNITS[unit]
            position = match.end()
    if total <= 0:
        raise _duration_error(text, "it must be greater than zero")
    return float(total)


def format_duration(seconds: float) -> str:
    """``seconds`` as compact text: 5400 -> ``"1h30m"``, 75 -> ``"1m15s"``, 0.4 -> ``"0.4s"``.

    Whole days, hours and minutes, then seconds to the millisecond.
    """
    if not math.isfinite(seconds) or seconds < 0:
        raise UnitError(f"cannot format duration {seconds!r}: it must be finite and >= 0")
    millis = round(Decimal(repr(float(seconds))) * 1000)
    if millis == 0:
        return "0s" if seconds == 0 else f"{float(seconds):g}s"
    parts: list[str] = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    if millis:
        parts.append(_decimal_text(Decimal(millis) / 1000) + "s")
    return "".join(parts)
