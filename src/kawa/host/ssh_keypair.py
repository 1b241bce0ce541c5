"""New SSH key pairs for users who have none (a VPS's key, shown once): Ed25519 in
OpenSSH's formats, made in memory and never written or logged by the host."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kawa.protocol.meta import SshKeyPair


def new_key_pair() -> SshKeyPair:
    """An Ed25519 key: the public one as an ``ssh-ed25519 AAAA…`` line, the private one
    as an unencrypted ``OPENSSH PRIVATE KEY`` block (what ``ssh-keygen -t ed25519`` writes)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return SshKeyPair(public_key=public.decode(), private_key=private.decode())
