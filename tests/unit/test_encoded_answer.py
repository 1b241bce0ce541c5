"""Which Accept-Encoding headers get a listing gzipped, and that the copy is the body."""

from __future__ import annotations

import gzip

import pytest

from kawa.host.encoded_answer import SMALLEST, EncodedAnswer, accepts_gzip


@pytest.mark.parametrize(
    ("header", "wanted"),
    [
        (None, False),
        ("", False),
        ("identity", False),
        ("gzip", True),
        ("GZip", True),
        ("br, gzip, deflate", True),
        ("gzip;q=0", False),
        ("gzip; q=0.5", True),
        ("*", True),
        ("*;q=0", False),
        ("gzip;q=0, *", False),
        ("*, gzip;q=0", False),
        ("x-gzip", True),
        ("deflate, br", False),
        ("gzip;q=bad", False),
    ],
)
def test_accepts_gzip(header: str | None, wanted: bool) -> None:
    assert accepts_gzip(header) is wanted


def test_a_long_body_is_kept_with_its_gzip_copy_and_a_short_one_without() -> None:
    body = b'[{"name": "node-1", "cores": 8}' + b', {"name": "node-2", "cores": 8}' * 200 + b"]"
    long = EncodedAnswer.of(body)
    assert long.gzipped is not None and gzip.decompress(long.gzipped) == body
    assert len(long.gzipped) * 10 < len(body)
    packed = long.response("gzip")
    assert packed.body == long.gzipped and packed.headers["content-encoding"] == "gzip"
    plain = long.response("identity")
    assert plain.body == body and "content-encoding" not in plain.headers
    assert plain.headers["vary"] == "Accept-Encoding"
    short = EncodedAnswer.of(b"[]" * (SMALLEST // 4))
    assert short.gzipped is None and short.response("gzip").body == short.body
