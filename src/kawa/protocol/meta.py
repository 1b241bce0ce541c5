"""Who the caller is and how to reach the cluster: what a dashboard's header and its
Connect card show."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kawa.protocol.common import WireModel

Role = Literal["viewer", "user", "admin"]


class WhoAmI(WireModel):
    """The owner of the token the request came with."""

    name: str
    role: Role


class SshGateway(WireModel):
    """Where the host's SSH gateway listens: ``ssh -J kawa@HOST:PORT root@<vps>``."""

    host: str
    port: int = Field(ge=1, le=65535)


class HostInfo(WireModel):
    """The host's version, the cluster's id, and the addresses users connect to."""

    version: str
    cluster_id: str
    api_url: str
    """The API's base URL as the caller reached it (scheme, host and port)."""
    ssh_gateway: SshGateway | None
    """None when the gateway is off (``host.ssh_port = 0``) or did not start."""
    tls: bool
    """Whether the API serves https and wss."""
    leading: bool = True
    """Whether this host leads the cluster (schedules and dispatches); False for a host
    standing by on a shared PostgreSQL database, which serves the API all the same."""


class SshKeyPair(WireModel):
    """A new Ed25519 key pair in OpenSSH formats; the host keeps no copy of it."""

    public_key: str
    private_key: str
