"""JSON answers kept with a gzip copy, so a kept listing is compressed once (in the
worker thread that read it) and sent compressed to every client that accepts it.

A listing of hundreds of nodes or tasks is a megabyte of JSON that compresses about
tenfold; sending it whole to each of many polling clients costs the event loop more
than compressing it once."""

from __future__ import annotations

import gzip
from dataclasses import dataclass

from starlette.responses import Response

SMALLEST = 1024
"""Bodies shorter than this many bytes are sent as they are."""

LEVEL = 5
"""gzip's compression level: most of level 9's gain at a fraction of its time."""


@dataclass(frozen=True)
class EncodedAnswer:
    body: bytes
    gzipped: bytes | None
    """``body`` compressed, or None when it is too short to be worth it."""

    @classmethod
    def of(cls, body: bytes) -> EncodedAnswer:
        if len(body) < SMALLEST:
            return cls(body, None)
        return cls(body, gzip.compress(body, compresslevel=LEVEL, mtime=0))

    def response(self, accept_encoding: str | None) -> Response:
        """The answer for a request with this ``Accept-Encoding`` header."""
        headers = {"Vary": "Accept-Encoding"}
        if self.gzipped is not None and accepts_gzip(accept_encoding):
            headers["Content-Encoding"] = "gzip"
            return Response(self.gzipped, media_type="application/json", headers=headers)
        return Response(self.body, media_type="application/json", headers=headers)


def accepts_gzip(header: str | None) -> bool:
    """Whether an ``Accept-Encoding`` header accepts gzip (named, or ``*``, with a
    quality above zero)."""
    if not header:
        return False
    star = False
    for item in header.split(","):
        name, _, params = item.strip().partition(";")
        name = name.strip().lower()
        if name not in ("gzip", "x-gzip", "*"):
            continue
        allowed = _quality(params) > 0
        if name != "*":
            return allowed
        star = allowed
    return star


def _quality(params: str) -> float:
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0
