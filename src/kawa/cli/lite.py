"""A few API calls with the standard library, for the commands on the VPS startup path.

``kawa ssh`` and ``kawa vps create`` are timed against ``docker run`` + ``ssh``:
importing httpx and the API models costs more than the calls themselves. These helpers
send the same requests as :class:`kawa.client.KawaClient` (same URL, token and timeout
from the client configuration) and fail with the same messages, as :class:`CliError`.
When an HTTP proxy is configured in the environment (which httpx would honour), or the
URL is not plain ``http``/``https``, :func:`usable` is false and callers use the full
client instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from kawa import config_file
from kawa.cli.output import CliError
from kawa.protocol.urls import API_PREFIX

if TYPE_CHECKING:
    import http.client

_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy")


class Credentials(NamedTuple):
    url: str
    token: str
    timeout: float
    ca_file: str | None = None
    """CA certificates that an https host is verified with (default: the system's)."""


def credentials() -> Credentials:
    """The client configuration (``kawa.settings.ClientConfig``), with the message of
    ``kawa.cli.context.client`` when there is no token."""
    found = _plain_client_config()
    if found is None:  # anything unusual: the real loader decides (and words errors)
        from kawa.settings import ClientConfig

        config = ClientConfig.load()
        ca_file = None if config.ca_file is None else str(config.ca_file)
        found = Credentials(config.url.rstrip("/"), config.token, config.timeout, ca_file)
    if not found.token:
        raise CliError(
            f"no API token configured: run `kawa up`, or set [client] token in "
            f"{config_file.config_path()} (or KAWA_CLIENT_TOKEN)"
        )
    return found


_PLAIN = ("url", "token", "timeout")
"""The ``[client]`` keys read here; ``ca_file`` (or any other) is left to the real loader."""


def _plain_client_config() -> Credentials | None:
    """``[client]`` read as ``ClientConfig.load`` reads it (file, then ``KAWA_CLIENT_*``),
    without pydantic, when every value is plainly valid and no CA file is set (the real
    loader checks that one); None otherwise."""
    import re

    try:
        data = config_file.section_values("client", (*_PLAIN, "ca_file"))
    except config_file.ConfigError:
        return None
    if not set(data) <= set(_PLAIN):
        return None
    url = data.get("url", config_file.CLIENT_URL)
    token = data.get("token", "")
    timeout = data.get("timeout", config_file.CLIENT_TIMEOUT)
    if isinstance(timeout, str):
        if not re.fullmatch(r"[0-9]+(\.[0-9]+)?", timeout):
            return None
        timeout = float(timeout)
    if not isinstance(url, str) or not isinstance(token, str):
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        return None
    if not 0 < timeout < float("inf"):
        return None
    return Credentials(url.rstrip("/"), token, float(timeout))


def usable(creds: Credentials, several: bool = False) -> bool:
    """Whether these helpers can reach the host as the full client would: no proxy,
    plain ``http``/``https`` URLs; a list of hosts (comma-separated) only with
    ``several``, for callers that go through :func:`call` and :func:`stream` alone."""
    if any(os.environ.get(v) or os.environ.get(v.upper()) for v in _PROXY_VARS):
        return False
    urls = host_urls(creds)
    if len(urls) > 1 and not several:
        return False
    return all(u.startswith(("http://", "https://")) for u in urls)


def host_urls(creds: Credentials) -> list[str]:
    """The hosts listed in the client's URL (several, comma-separated, for hosts
    sharing one database), in the order they are tried."""
    return [u.strip().rstrip("/") for u in creds.url.split(",") if u.strip()]


class NotSent(CliError):
    """No request reached the host (it could not be connected to): nothing was done."""


class Refused(CliError):
    """The host answered with an error status (its ``detail`` is the message)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _unreachable(url: str, exc: BaseException) -> str:
    from kawa.client.errors import tls_hint

    return f"cannot reach the Kawa host at {url}: {exc}{tls_hint(url, exc)}"


def _connect(creds: Credentials) -> tuple[str, http.client.HTTPConnection]:
    """A connection to the first listed host that accepts one, and its URL."""
    import http.client
    from urllib.parse import urlsplit

    urls = host_urls(creds)
    failure: BaseException = ValueError("no host URL configured")
    for url in urls:
        parts = urlsplit(url)
        conn: http.client.HTTPConnection
        try:
            if parts.scheme == "https":
                import ssl

                context = ssl.create_default_context(cafile=creds.ca_file)
                conn = http.client.HTTPSConnection(
                    parts.hostname or "", parts.port, timeout=creds.timeout, context=context
                )
            else:
                conn = http.client.HTTPConnection(
                    parts.hostname or "", parts.port, timeout=creds.timeout
                )
            conn.connect()
        except (OSError, ValueError) as exc:
            failure = exc
            continue
        return url, conn
    raise NotSent(_unreachable(", ".join(urls) or creds.url, failure))


def _open(
    creds: Credentials, method: str, path: str, body: Any = None, query: str = ""
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """A connection and the response headers of ``method`` on ``API_PREFIX + path``;
    error statuses and redirects raise as the client's errors (``kawa.client.errors``)."""
    import http.client
    import json
    from urllib.parse import quote, urlsplit

    url, conn = _connect(creds)
    parts = urlsplit(url)
    headers = {"Authorization": f"Bearer {creds.token}", "Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    target = quote(parts.path.rstrip("/") + API_PREFIX + path, safe="/:@!$&'()*+,;=-._~")
    if query:
        target += "?" + query
    try:
        conn.request(method, target, body=data, headers=headers)
        response = conn.getresponse()
        if response.status >= 300:
            raw = response.read()
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        raise CliError(_unreachable(url, exc)) from None
    if 300 <= response.status < 400:
        from kawa.client.errors import redirected

        conn.close()
        where = f"{url}{API_PREFIX}{path}"
        raise CliError(redirected(where, response.status, response.getheader("location")))
    if response.status >= 400:
        conn.close()
        raise Refused(_detail(raw) or response.reason or f"HTTP {response.status}", response.status)
    return conn, response


def call(creds: Credentials, method: str, path: str, body: Any = None, query: str = "") -> Any:
    """``method`` on ``API_PREFIX + path``; the decoded JSON answer. Errors as the client's
    (``kawa.client.errors``): the host's ``detail``, or ``cannot reach the Kawa host``."""
    import http.client
    import json

    conn, response = _open(creds, method, path, body, query)
    try:
        raw = response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise CliError(_unreachable(creds.url, exc)) from None
    finally:
        conn.close()
    try:
        return json.loads(raw)
    except ValueError:
        raise CliError(
            f"unexpected answer from {creds.url}{API_PREFIX}{path}: HTTP {response.status}"
        ) from None


def stream(
    creds: Credentials, path: str, query: str, write: Callable[[bytes], None]
) -> None:
    """GET ``API_PREFIX + path`` and hand each piece of the body to ``write`` as it
    arrives, until the host ends it; reads wait as long as it takes (the body of a
    followed log is quiet while its task is)."""
    import http.client

    conn, response = _open(creds, "GET", path, query=query)
    try:
        if conn.sock is not None:
            conn.sock.settimeout(None)
        while True:
            try:
                chunk = response.read1(CHUNK)
            except (OSError, http.client.HTTPException) as exc:
                raise CliError(_unreachable(creds.url, exc)) from None
            if not chunk:
                return
            write(chunk)
    finally:
        conn.close()


CHUNK = 65536


def _detail(raw: bytes) -> str:
    import json

    try:
        detail = json.loads(raw).get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list):  # FastAPI's default validation shape
        detail = "; ".join(str(d.get("msg", d)) for d in detail)
    return str(detail or raw.decode("utf-8", "replace"))
