"""One HTTP/1.1 request per connection over a plain socket, for the CLI's quick path.

``http.client`` takes about 20 ms to import (it loads the ``email`` package to read
headers): a third of what a quick command spends before its first request. The host's
answers need much less: a status line, a few headers, and a body framed by
``Content-Length``, by chunked encoding, or by the end of the connection. Requests
carry ``Connection: close``; ``ssl`` is imported only for ``https``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

CHUNK = 65536
"""The most bytes :meth:`Answer.read1` hands out at once from an unframed body."""
_LINE = 65536
"""The longest status, header or chunk-size line accepted."""
_HEADERS = 100
"""The most header lines accepted in one answer."""


class BadAnswer(Exception):
    """What came back is not an HTTP/1.x answer as this module reads it (or it ended
    before its body did)."""


def connect(
    scheme: str, host: str, port: int | None, timeout: float, ca_file: str | None = None
) -> socket.socket:
    """A connected socket (TLS-wrapped for ``https``, verified against ``ca_file`` or
    the system's certificates); ``OSError`` when the host cannot be reached."""
    default = 443 if scheme == "https" else 80
    # bytes skip the idna codec (a few ms to import) for names that are plain ASCII
    name: str | bytes = host.encode("ascii") if host.isascii() else host
    sock = socket.create_connection((name, port or default), timeout)  # type: ignore[arg-type]
    if scheme != "https":
        return sock
    import ssl

    try:
        context = ssl.create_default_context(cafile=ca_file)
        return context.wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise


class Answer:
    """The status and headers of an answer, and its body as it arrives."""

    def __init__(self, sock: socket.socket, method: str) -> None:
        self.sock = sock
        self._reader = sock.makefile("rb")
        try:
            line = self._line()
            version, _, rest = line.partition(" ")
            code, _, reason = rest.partition(" ")
            if not version.startswith("HTTP/1.") or not (code.isdigit() and len(code) == 3):
                raise BadAnswer(f"not an HTTP answer: {line[:80]!r}")
            self.status = int(code)
            self.reason = reason.strip()
            self.headers: dict[str, str] = {}
            for _ in range(_HEADERS):
                line = self._line()
                if not line:
                    break
                key, sep, value = line.partition(":")
                if not sep:
                    raise BadAnswer(f"bad header line: {line[:80]!r}")
                self.headers[key.strip().lower()] = value.strip()
            else:
                raise BadAnswer("too many header lines")
            self._pieces = self._body(method)
        except BaseException:
            self.close()
            raise

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def read1(self) -> bytes:
        """The next piece of the body as soon as it arrives; ``b""`` at its end."""
        return next(self._pieces, b"")

    def read(self) -> bytes:
        """The rest of the body."""
        return b"".join(self._pieces)

    def close(self) -> None:
        self._reader.close()
        self.sock.close()

    def _line(self) -> str:
        raw = self._reader.readline(_LINE + 1)
        if len(raw) > _LINE:
            raise BadAnswer("line too long")
        if not raw.endswith(b"\n"):
            raise BadAnswer("the connection closed mid-answer")
        return raw.rstrip(b"\r\n").decode("latin-1")

    def _body(self, method: str) -> Iterator[bytes]:
        if method == "HEAD" or self.status in (204, 304) or 100 <= self.status < 200:
            return
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            yield from self._chunked()
            return
        length = self.headers.get("content-length")
        if length is None:
            while piece := self._reader.read1(CHUNK):
                yield piece
            return
        if not length.isdigit():
            raise BadAnswer(f"bad Content-Length: {length[:40]!r}")
        left = int(length)
        while left:
            piece = self._reader.read1(min(CHUNK, left))
            if not piece:
                raise BadAnswer("the connection closed mid-answer")
            left -= len(piece)
            yield piece

    def _chunked(self) -> Iterator[bytes]:
        while True:
            size_text = self._line().partition(";")[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise BadAnswer(f"bad chunk size: {size_text[:40]!r}") from None
            if size == 0:
                while self._line():  # trailer fields, then the blank line
                    pass
                return
            piece = self._reader.read(size)
            if len(piece) != size or self._line():
                raise BadAnswer("the connection closed mid-answer")
            yield piece


def send(
    sock: socket.socket,
    method: str,
    target: str,
    host: str,
    headers: dict[str, str],
    body: bytes | None = None,
) -> Answer:
    """Send one request on ``sock`` and read the answer's status and headers (the
    socket is closed when that fails); ``ValueError`` for a line break in any part of
    the head (nothing is sent, the socket is left open)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    if any("\r" in line or "\n" in line for line in lines):
        raise ValueError("a line break in an HTTP request head")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    try:
        sock.sendall(head + body if body else head)
    except BaseException:
        sock.close()
        raise
    return Answer(sock, method)
