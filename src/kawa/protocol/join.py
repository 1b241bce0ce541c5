"""Joining a node to the cluster: join tokens and the exchange of one for credentials.

A join token is short-lived and revocable; it is never the cluster secret. ``POST
/api/v1/join`` trades one for what a runner needs to take part (the cluster id and the
cluster secret, see docs/security.md).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from kawa.protocol import bounds as b
from kawa.protocol.common import WireModel

PROTOCOL_VERSION = 1
"""The host↔runner protocol this build speaks. Additions that older peers may ignore
keep it; anything an older peer would misread raises it (docs/compatibility.md)."""

JOIN_TOKEN_PREFIX = "kawajoin"
MAX_JOIN_TTL = 30 * 86400.0
"""The longest a join token may live: 30 days."""


def token_cluster(token: str) -> str | None:
    """The cluster id a join token names, or None when ``token`` is not shaped as one
    (``kawajoin.<cluster id>.<secret>``)."""
    parts = token.strip().split(".")
    if len(parts) != 3 or parts[0] != JOIN_TOKEN_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1]


class JoinTokenCreate(WireModel):
    ttl: float = Field(default=3600.0, gt=0, le=MAX_JOIN_TTL, description="seconds it is valid")
    uses: int = Field(default=1, ge=1, le=10_000, description="how many nodes may join with it")
    note: str = Field(default="", max_length=128)


class JoinTokenView(WireModel):
    """A join token as listed: never its value (only a hash of it is stored)."""

    id: int
    created_at: datetime
    expires_at: datetime
    uses: int
    used: int
    revoked: bool
    created_by: str
    note: str = ""
    state: str
    """``valid``, ``expired``, ``used up`` or ``revoked``."""


class JoinTokenCreated(WireModel):
    """A new join token: its value is shown this once."""

    token: str
    view: JoinTokenView


class JoinRequest(WireModel):
    token: str = Field(min_length=1, max_length=256)
    name: b.NodeName
    protocol_version: int = Field(ge=0, le=1_000_000)


class JoinAccepted(WireModel):
    cluster_id: str
    cluster_secret: str
    protocol_version: int
    heartbeat_interval: float
