"""SSL contexts for Kawa's clients, and the checks the configuration runs on TLS files.

A client given a CA file trusts the certificates in it and no others; without one it
trusts the system's (what httpx and websockets do by default). Host names are checked
against the server certificate's subject alternative names.
"""

from __future__ import annotations

import functools
import os
import ssl
from typing import Any

PathLike = str | os.PathLike[str]


class TLSFileError(ValueError):
    """A certificate, key or CA file cannot be used; the message says which and why."""


@functools.cache
def _context(ca_file: str) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise TLSFileError(f"cannot load CA certificates from {ca_file}: {_why(exc)}") from None
    if not context.get_ca_certs():
        raise TLSFileError(f"{ca_file} holds no CA certificate")
    return context


def client_context(ca_file: PathLike | None) -> ssl.SSLContext | None:
    """A context that trusts only the CA certificates in ``ca_file`` (loaded once per
    path); None without one, meaning the default trust. TLSFileError if unusable."""
    return None if ca_file is None else _context(os.fspath(ca_file))


def httpx_verify(ca_file: PathLike | None) -> ssl.SSLContext | bool:
    """httpx's ``verify=`` for ``ca_file``: its context, or True (the default trust)."""
    return client_context(ca_file) or True


def websocket_ssl(url: str, ca_file: PathLike | None) -> dict[str, Any]:
    """The ``ssl=`` keyword for a ``websockets`` connect to ``url``: the CA file's
    context for wss://, nothing for ws:// (where ``websockets`` refuses one)."""
    context = client_context(ca_file)
    if context is None or not url.startswith("wss://"):
        return {}
    return {"ssl": context}


def check_server_files(cert: PathLike, key: PathLike) -> None:
    """TLSFileError unless ``cert`` and ``key`` load as a certificate and its key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(os.fspath(cert), os.fspath(key))
    except (OSError, ssl.SSLError) as exc:
        raise TLSFileError(
            f"cannot load the TLS certificate {cert} with key {key}: {_why(exc)}"
        ) from None


_REASONS = {
    "NO_CERTIFICATE_OR_CRL_FOUND": "it holds no PEM certificate",
    "KEY_VALUES_MISMATCH": "the key is not the certificate's",
}


def _why(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLError):
        return _REASONS.get(exc.reason or "", exc.reason or str(exc))
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)
