"""Reading files in chunks and SHA-256 digests in the form Kawa writes them
(``sha256:<hex>``): shared by the host, the runner and the client."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

CHUNK = 1 << 20
"""How many bytes a file or a transfer is read in at a time."""
PREFIX = "sha256:"


def read_chunks(path: Path, size: int = CHUNK) -> Iterator[bytes]:
    """The bytes of ``path``, ``size`` at a time (the file is closed at the end)."""
    with path.open("rb") as f:
        while chunk := f.read(size):
            yield chunk


class Sha256:
    """A running SHA-256 whose result reads ``sha256:<hex>``."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def update(self, chunk: bytes) -> None:
        self._hash.update(chunk)

    def text(self) -> str:
        return PREFIX + self._hash.hexdigest()


def sha256_file(path: Path) -> str:
    """``sha256:<hex>`` of a file's bytes."""
    digest = Sha256()
    for chunk in read_chunks(path):
        digest.update(chunk)
    return digest.text()
