"""Errors the client raises: one type, with the host's message."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx


class KawaError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message, self.status = message, status


def raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    if isinstance(detail, list):  # FastAPI's default validation shape
        detail = "; ".join(str(d.get("msg", d)) for d in detail)
    raise KawaError(str(detail or response.text or response.reason_phrase), response.status_code)


def unreachable(url: str, exc: Exception) -> KawaError:
    return KawaError(f"cannot reach the Kawa host at {url}: {exc}")
