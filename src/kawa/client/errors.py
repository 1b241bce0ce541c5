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
    """:class:`KawaError` for an error or a redirect (which the API never sends to a
    request it serves: the configured URL is not the Kawa host's API)."""
    if response.status_code < 300:
        return
    if response.status_code < 400:
        raise KawaError(
            redirected(str(response.url), response.status_code, response.headers.get("location")),
            response.status_code,
        )
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    if isinstance(detail, list):  # FastAPI's default validation shape
        detail = "; ".join(str(d.get("msg", d)) for d in detail)
    raise KawaError(str(detail or response.text or response.reason_phrase), response.status_code)


def redirected(url: str, status: int, location: str | None) -> str:
    """The message for a redirect answered to ``url``."""
    to = f" to {location}" if location else ""
    return (
        f"the host answered {url} with a redirect (HTTP {status}{to}); "
        "check that [client] url is the Kawa host's address"
    )


def refused(what: str, url: str, status: int) -> KawaError:
    """A WebSocket handshake the host answered with ``status`` instead of accepting."""
    if 300 <= status < 400:
        return KawaError(redirected(url, status, None), status)
    return KawaError(f"the host refused {what}: HTTP {status}", status)


def unreachable(url: str, exc: Exception) -> KawaError:
    """The error for a host that could not be talked to, saying why when TLS is why."""
    return KawaError(f"cannot reach the Kawa host at {url}: {exc}{tls_hint(url, exc)}")


def tls_hint(url: str, exc: BaseException) -> str:
    """What to check when ``exc`` (or what caused it) is a TLS failure, else ""."""
    import ssl

    seen: BaseException | None = exc
    for _ in range(8):  # the causes of an httpx error: httpcore's, then ssl's
        if seen is None:
            break
        if isinstance(seen, ssl.SSLCertVerificationError):
            return " (its TLS certificate is not signed by a CA this client trusts: check ca_file)"
        if isinstance(seen, ssl.SSLError):
            if url.startswith(("https:", "wss:")):
                return " (a TLS handshake failed: does the host serve https on this port?)"
            return ""
        seen = seen.__cause__ or seen.__context__
    if url.startswith(("http:", "ws:")) and "disconnected" in str(exc).lower():
        return " (if the host serves https, use an https:// URL)"
    return ""
