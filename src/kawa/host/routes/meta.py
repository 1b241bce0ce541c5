"""/api/v1/whoami, /api/v1/info and /api/v1/ssh-keys: the caller, how to reach the
cluster, and a new key pair for a VPS."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from kawa import __version__
from kawa.host.deps import HostDep, UserDep
from kawa.host.errors import Forbidden
from kawa.host.ssh_keypair import new_key_pair
from kawa.protocol.meta import HostInfo, SshGateway, SshKeyPair, WhoAmI

router = APIRouter(tags=["meta"])


@router.get("/whoami")
async def whoami(who: UserDep) -> WhoAmI:
    """The user and role of the token the request came with."""
    return WhoAmI(name=who.user, role=who.role)  # type: ignore[arg-type]


@router.get("/info")
async def info(request: Request, host: HostDep, who: UserDep) -> HostInfo:
    """The host's version, the cluster's id, the API's URL as the caller reached it, and
    the SSH gateway users give ``ssh -J`` (the same host name, the gateway's port; None
    when the gateway is off or did not start), and whether this host leads."""
    api_url = str(request.base_url).rstrip("/")
    port = host.gateway_port
    gateway = None
    if port is not None and request.url.hostname:
        gateway = SshGateway(host=request.url.hostname, port=port)
    return HostInfo(
        version=__version__,
        cluster_id=host.cluster_id,
        api_url=api_url,
        ssh_gateway=gateway,
        tls=host.config.tls,
        leading=host.leading,
    )


@router.post("/ssh-keys", status_code=201)
async def new_ssh_key(response: Response, who: UserDep) -> SshKeyPair:
    """A new Ed25519 key pair in OpenSSH formats, shown once: the host keeps no copy and
    logs neither key (the public one is what ``kawa vps create --public-key-string`` takes)."""
    if who.role == "viewer":
        raise Forbidden("the viewer role cannot create SSH keys")
    response.headers["Cache-Control"] = "no-store"
    return new_key_pair()
