"""Calls the host refused as too busy (HTTP 429): whether to send them again, and
after how long. The host refuses before doing any of the work, so sending the same
call again is safe."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

TOO_BUSY = 429
MAX_RETRIES = 10
"""Sends after the first, at most."""
MAX_DELAY = 30.0
"""Seconds waited at most before one send, whatever ``Retry-After`` asks."""
FIRST_DELAY = 0.25
"""Seconds before the first resend when the host gave no ``Retry-After`` (then doubled)."""


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """The seconds a ``Retry-After`` header asks for (a number of seconds or an HTTP
    date); None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        at = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return max(0.0, (at - (now or datetime.now(UTC))).total_seconds())


def retry_delay(
    status: int,
    header: str | None,
    attempt: int,
    jitter: float = 0.0,
    max_retries: int = MAX_RETRIES,
) -> float | None:
    """Seconds to wait before sending a call again whose send number ``attempt`` (0 for
    the first) was answered ``status``; None when it is not to be sent again (not a 429,
    or ``max_retries`` resends made). ``jitter`` (0 to 1) lengthens the wait up to twice,
    so that clients refused together do not come back together."""
    if status != TOO_BUSY or attempt >= max_retries:
        return None
    asked = retry_after(header)
    delay = asked if asked is not None else FIRST_DELAY * 2**attempt
    delay = min(delay, MAX_DELAY)
    return min(delay * (1 + min(max(jitter, 0.0), 1.0)), MAX_DELAY)
