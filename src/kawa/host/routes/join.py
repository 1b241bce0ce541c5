"""/api/v1/join (a new node trades a join token for credentials) and
/api/v1/join-tokens (admins make, list and revoke them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from kawa.host.deps import HostDep, UserDep
from kawa.host.errors import Forbidden
from kawa.protocol.join import (
    JoinAccepted,
    JoinRequest,
    JoinTokenCreate,
    JoinTokenCreated,
    JoinTokenView,
)

router = APIRouter(tags=["join"])
TokenId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post("/join")
def join(req: JoinRequest, host: HostDep, request: Request) -> JoinAccepted:
    """No API token: the join token in the body is the credential."""
    address = request.client.host if request.client else None
    return host.joins.exchange(req, address)


def _admin(who: object, what: str) -> None:
    if not getattr(who, "is_admin", False):
        raise Forbidden(f"{what} join tokens needs the admin role")


@router.post("/join-tokens")
def create_join_token(spec: JoinTokenCreate, host: HostDep, who: UserDep) -> JoinTokenCreated:
    _admin(who, "making")
    return host.joins.create(spec, who)


@router.get("/join-tokens")
def list_join_tokens(host: HostDep, who: UserDep) -> list[JoinTokenView]:
    _admin(who, "listing")
    return host.joins.list()


@router.post("/join-tokens/{token_id}/revoke")
def revoke_join_token(token_id: TokenId, host: HostDep, who: UserDep) -> JoinTokenView:
    _admin(who, "revoking")
    return host.joins.revoke(token_id, who)
