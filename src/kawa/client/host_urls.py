"""A list of host URLs (``"http://a:8420,http://b:8420"``): hosts sharing one database,
of which whichever answers is used."""

from __future__ import annotations

import httpx

from kawa.client.errors import KawaError

NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout)
"""httpx errors raised before a request left: sending it to another host is safe."""
SAFE_METHODS = frozenset({"GET", "HEAD"})
"""Requests that change nothing: sent again to another host after any transport error."""


def may_resend(method: str, exc: Exception) -> bool:
    """Whether a request that failed with ``exc`` may go to another host: one that never
    left, or one that changes nothing (its host died while answering)."""
    if isinstance(exc, NOT_SENT):
        return True
    return method.upper() in SAFE_METHODS and isinstance(exc, httpx.TransportError)


def split_urls(text: str) -> list[str]:
    """The URLs in a comma-separated list, without trailing slashes; KawaError when
    there is none."""
    urls = [u.strip().rstrip("/") for u in text.split(",")]
    urls = [u for u in urls if u]
    if not urls:
        raise KawaError(f"no host URL in {text!r}")
    return urls


class HostUrls:
    """The URLs to try, starting with the one that answered last."""

    def __init__(self, text: str) -> None:
        self.all = split_urls(text)
        self._at = 0

    @property
    def current(self) -> str:
        return self.all[self._at]

    def attempts(self) -> list[str]:
        """Every URL once, the current one first, then those after it in order."""
        n = len(self.all)
        return [self.all[(self._at + i) % n] for i in range(n)]

    def answered(self, url: str) -> None:
        """Make ``url`` (one of :attr:`all`) the first to try from now on."""
        self._at = self.all.index(url)

    def __len__(self) -> int:
        return len(self.all)
