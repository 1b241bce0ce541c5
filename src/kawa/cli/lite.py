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

from kawa import config_file
from kawa.cli.output import CliError
from kawa.protocol.urls import API_PREFIX

TYPE_CHECKING = False  # typing is not imported at run time: the quick CLI path skips it
if TYPE_CHECKING:
    import socket
    from typing import Any, NamedTuple

    from kawa.cli import bare_http

_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy")


if TYPE_CHECKING:

    class Credentials(NamedTuple):
        url: str
        token: str
        timeout: float
        ca_file: str | None = None
        """CA certificates an https host is verified with (default: the system's)."""

else:  # the same tuple, made without typing
    from collections import namedtuple

    Credentials = namedtuple("Credentials", "url token timeout ca_file", defaults=(None,))


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


def _connect(creds: Credentials) -> tuple[str, socket.socket]:
    """A connection to the first listed host that accepts one, and its URL."""
    from urllib.parse import urlsplit

    from kawa.cli import bare_http

    urls = host_urls(creds)
    failure: BaseException = ValueError("no host URL configured")
    for url in urls:
        parts = urlsplit(url)
        try:
            sock = bare_http.connect(
                parts.scheme, parts.hostname or "", parts.port, creds.timeout, creds.ca_file
            )
        except (OSError, ValueError) as exc:
            failure = exc
            continue
        return url, sock
    raise NotSent(_unreachable(", ".join(urls) or creds.url, failure))


def _open(
    creds: Credentials, method: str, path: str, body: Any = None, query: str = ""
) -> tuple[str, bare_http.Answer]:
    """The URL asked and the status and headers of ``method`` on ``API_PREFIX + path``;
    error statuses and redirects raise as the client's errors (``kawa.client.errors``)."""
    import json
    from urllib.parse import quote, urlsplit

    from kawa.cli import bare_http

    url, sock = _connect(creds)
    parts = urlsplit(url)
    headers = {"Authorization": f"Bearer {creds.token}", "Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    target = quote(parts.path.rstrip("/") + API_PREFIX + path, safe="/:@!$&'()*+,;=-._~")
    if query:
        target += "?" + query
    host = parts.netloc.rpartition("@")[2]
    try:
        answer = bare_http.send(sock, method, target, host, headers, data)
    except (OSError, ValueError, bare_http.BadAnswer) as exc:
        sock.close()
        raise CliError(_unreachable(url, exc)) from None
    if answer.status >= 300:
        raw = _body(url, answer)
    if 300 <= answer.status < 400:
        from kawa.client.errors import redirected

        where = f"{url}{API_PREFIX}{path}"
        raise CliError(redirected(where, answer.status, answer.header("location")))
    if answer.status >= 400:
        raise Refused(_detail(raw) or answer.reason or f"HTTP {answer.status}", answer.status)
    return url, answer


def _body(url: str, answer: bare_http.Answer) -> bytes:
    """The whole body of ``answer`` (then closed), or why it could not be read."""
    from kawa.cli import bare_http

    try:
        return answer.read()
    except (OSError, bare_http.BadAnswer) as exc:
        raise CliError(_unreachable(url, exc)) from None
    finally:
        answer.close()


def call(creds: Credentials, method: str, path: str, body: Any = None, query: str = "") -> Any:
    """``method`` on ``API_PREFIX + path``; the decoded JSON answer. Errors as the client's
    (``kawa.client.errors``): the host's ``detail``, or ``cannot reach the Kawa host``."""
    import json

    url, answer = _open(creds, method, path, body, query)
    raw = _body(url, answer)
    try:
        return json.loads(raw)
    except ValueError:
        raise CliError(
            f"unexpected answer from {url}{API_PREFIX}{path}: HTTP {answer.status}"
        ) from None


def stream(
    creds: Credentials, path: str, query: str, write: Callable[[bytes], None]
) -> None:
    """GET ``API_PREFIX + path`` and hand each piece of the body to ``write`` as it
    arrives, until the host ends it; reads wait as long as it takes (the body of a
    followed log is quiet while its task is)."""
    from kawa.cli import bare_http

    url, answer = _open(creds, "GET", path, query=query)
    try:
        answer.sock.settimeout(None)
        while True:
            try:
                chunk = answer.read1()
            except (OSError, bare_http.BadAnswer) as exc:
                raise CliError(_unreachable(url, exc)) from None
            if not chunk:
                return
            write(chunk)
    finally:
        answer.close()


def _detail(raw: bytes) -> str:
    import json

    try:
        detail = json.loads(raw).get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list):  # FastAPI's default validation shape
        detail = "; ".join(str(d.get("msg", d)) for d in detail)
    return str(detail or raw.decode("utf-8", "replace"))
