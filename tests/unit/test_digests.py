"""Chunked reading and the ``sha256:<hex>`` digests shared by host, runner and client."""

from __future__ import annotations

import hashlib
from pathlib import Path

from kawa.digests import CHUNK, Sha256, read_chunks, sha256_file


def test_chunks_and_digest_of_a_file_larger_than_a_chunk(tmp_path: Path) -> None:
    data = bytes(range(256)) * (CHUNK // 256 * 2 + 3)
    path = tmp_path / "blob"
    path.write_bytes(data)
    chunks = list(read_chunks(path))
    assert [len(c) for c in chunks] == [CHUNK, CHUNK, 3 * 256]
    assert b"".join(chunks) == data
    assert sha256_file(path) == "sha256:" + hashlib.sha256(data).hexdigest()
    running = Sha256()
    for c in chunks:
        running.update(c)
    assert running.text() == sha256_file(path)


def test_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert list(read_chunks(path)) == []
    assert sha256_file(path) == "sha256:" + hashlib.sha256(b"").hexdigest()
