"""What the SSH gateway's fast paths need from asyncssh's internals (asyncssh is pinned;
tests/unit/test_ssh_gateway_framing.py fails if these move)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import asyncssh
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def packet_log_on() -> bool:
    """Whether asyncssh logs every packet (debug level 3): then it must see them all."""
    return bool(getattr(asyncssh.logging.SSHLogger, "_debug_level", 3) >= 3)


def missing(obj: Any, names: Iterable[str]) -> list[str]:
    """The attributes of ``names`` that ``obj`` lacks."""
    return [n for n in names if not hasattr(obj, n)]


class GcmKey:
    """An AES-GCM key schedule for asyncssh's current GCM cipher object: made once per
    key (again after each rekey, which brings a new cipher object), not per packet."""

    def __init__(self) -> None:
        self._cipher: object = None
        self._aes: AESGCM | None = None
        self.keys = 0
        """Keys used so far."""

    def of(self, cipher: Any) -> AESGCM:
        if self._aes is None or self._cipher is not cipher:
            self._cipher, self._aes = cipher, AESGCM(cipher._key)
            self.keys += 1
        return self._aes
